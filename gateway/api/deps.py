"""FastAPI dependencies: the per-request session and the caller's identity and role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from gateway.context import GatewayContext
from gateway.services.keys import Principal, Role, authenticate

_bearer = HTTPBearer(
    auto_error=False, description="An API key from `kioskmatch gateway create-key`"
)


def get_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.context
    return context


ContextDep = Annotated[GatewayContext, Depends(get_context)]


def get_session(context: ContextDep) -> Iterator[Session]:
    with context.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "send an API key as 'Authorization: Bearer <key>'")
    principal = authenticate(session, credentials.credentials)
    if principal is None:
        raise HTTPException(401, "this API key is unknown or revoked")
    return principal


def _require(role: Role) -> object:
    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role is not role:
            raise HTTPException(403, f"this endpoint needs a {role.value} key")
        return principal

    return Depends(check)


CurrentDealer = Annotated[Principal, _require(Role.DEALER)]
CurrentLender = Annotated[Principal, _require(Role.LENDER)]
CurrentOps = Annotated[Principal, _require(Role.OPS)]
