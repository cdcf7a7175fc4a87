"""One module per CLI command group; ``encaisse.cli`` registers them."""
