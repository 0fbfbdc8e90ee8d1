"""FastAPI dependencies: the per-request session and the caller's identity and role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from gateway.context import GatewayContext
from gateway.services.keys import Principal, Role, authenticate

_bearer = HTTPBearer(
    auto_error=False, description="An API key from `kioskmatch gateway create-key`"
)


async def get_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.context
    return context


ContextDep = Annotated[GatewayContext, Depends(get_context)]


async def get_session(context: ContextDep) -> AsyncIterator[Session]:
    # Opening a session does no IO (it connects on first use), so this stays on the event loop
    # and the route's own thread does the database work.
    with context.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_principal(
    context: ContextDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "send an API key as 'Authorization: Bearer <key>'")
    # Answered from the cache almost always; a miss is one indexed lookup, done inline rather
    # than on a worker thread (a thread hop costs more than the query on the hot path).
    principal = context.principals.get(
        credentials.credentials, lambda token: authenticate(session, token)
    )
    if principal is None:
        raise HTTPException(401, "this API key is unknown or revoked")
    return principal


def _require(role: Role) -> object:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role is not role:
            raise HTTPException(403, f"this endpoint needs a {role.value} key")
        return principal

    return Depends(check)


CurrentDealer = Annotated[Principal, _require(Role.DEALER)]
CurrentLender = Annotated[Principal, _require(Role.LENDER)]
CurrentOps = Annotated[Principal, _require(Role.OPS)]
