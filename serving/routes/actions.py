"""``POST /v1/actions``: record a collector action; features and next steps use it from then on."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from serving import writes
from serving.deps import ActionsCaller, StateDep, check_portfolio
from serving.schemas import ActionIn, ActionOut, ErrorOut

router = APIRouter(prefix="/v1", tags=["actions"])


@router.post("/actions", response_model=ActionOut, status_code=status.HTTP_201_CREATED,
             summary="Record a collector action (call, promise to pay, dispute, payment plan, dunning block)",
             responses={200: {"model": ActionOut, "description": "An action already stored: edited (`created` "
                                                                 "true, `write.updated` 1), or the same (`created` "
                                                                 "false, nothing changed)."},
                        403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut},
                        503: {"model": ErrorOut, "description": "The store stayed busy; nothing was stored. "
                                                                "Retry after `Retry-After` seconds."}})
def create_action(body: ActionIn, state: StateDep, principal: ActionsCaller, response: Response) -> ActionOut:
    """A new ``action_id`` is stored (201). One already stored is edited (200): the new version supersedes
    the stored one, which is kept (``action_history``); sent again unchanged, nothing changes (200).
    A collector may only name actions of their own portfolio."""
    check_portfolio(state, principal, body.client_id)
    try:
        outcome = writes.record_action(state, body.model_dump(), principal=principal)
    except writes.NotYours as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if not outcome.inserted:
        response.status_code = status.HTTP_200_OK
    return ActionOut(action_id=outcome.keys[0], created=outcome.inserted + outcome.updated > 0,
                     write=outcome.__dict__)
