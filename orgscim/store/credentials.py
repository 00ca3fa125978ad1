"""Credentials of organizations: only Argon2id hashes, with expiry for rotation and revocation (DESIGN §5)."""

from __future__ import annotations

from orgscim.model.clock import now
from orgscim.model.contract import Credential

from .db import Database


class CredentialRows:
    """The ``credentials`` table, for :class:`orgscim.store.orgs.OrgStore`."""

    db: Database

    def add_credential(self, org_pk: int, cred_id: str, kind: str, hash_: str, username: str | None = None,
                       expires: str | None = None) -> Credential:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO credentials (org_pk, cred_id, kind, username, hash, created, expires) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (org_pk, cred_id, kind, username, hash_, now(), expires))
        cred = self.credential(org_pk, cred_id)
        assert cred is not None
        return cred

    def credential(self, org_pk: int, cred_id: str) -> Credential | None:
        row = self.db.one("SELECT * FROM credentials WHERE org_pk = ? AND cred_id = ?", (org_pk, cred_id))
        return Credential(**dict(row)) if row else None

    def credential_by_pk(self, pk: int) -> Credential | None:
        row = self.db.one("SELECT * FROM credentials WHERE pk = ?", (pk,))
        return Credential(**dict(row)) if row else None

    def credentials(self, org_pk: int, active_only: bool = False) -> list[Credential]:
        creds = [Credential(**dict(r)) for r in
                 self.db.all("SELECT * FROM credentials WHERE org_pk = ? ORDER BY pk", (org_pk,))]
        ts = now()
        return [c for c in creds if c.active(ts)] if active_only else creds

    def active_credentials(self, org_pk: int, kind: str) -> list[Credential]:
        """The org's credentials of ``kind`` that are neither revoked nor past their expiry."""
        rows = self.db.all("SELECT * FROM credentials WHERE org_pk = ? AND kind = ? AND revoked IS NULL "
                           "AND (expires IS NULL OR expires > ?) ORDER BY pk", (org_pk, kind, now()))
        return [Credential(**dict(r)) for r in rows]

    def supersede_credentials(self, org_pk: int, kind: str, deadline: str, keep_pk: int) -> list[Credential]:
        """Rotation: every other active credential of ``kind`` expires at ``deadline`` (unless it expires
        sooner already). Returns the credentials changed, as they are now."""
        where = "org_pk = ? AND kind = ? AND pk != ? AND revoked IS NULL AND (expires IS NULL OR expires > ?)"
        params = (org_pk, kind, keep_pk, deadline)
        with self.db.transaction() as conn:
            pks = [r[0] for r in conn.execute(f"SELECT pk FROM credentials WHERE {where}", params)]
            conn.executemany("UPDATE credentials SET expires = ? WHERE pk = ?", [(deadline, pk) for pk in pks])
        return [c for c in (self.credential_by_pk(pk) for pk in pks) if c is not None]

    def revoke_credential(self, org_pk: int, cred_id: str, at: str) -> Credential | None:
        """Revoke now (a credential revoked earlier keeps its first revocation time)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE credentials SET revoked = COALESCE(revoked, ?) WHERE org_pk = ? AND cred_id = ?",
                         (at, org_pk, cred_id))
        return self.credential(org_pk, cred_id)

    def update_credential(self, pk: int, **fields: str | None) -> None:
        allowed = {"hash", "last_used", "expires", "revoked"}
        sets = [k for k in fields if k in allowed]
        if not sets:
            return
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE credentials SET {', '.join(f'{k} = ?' for k in sets)} WHERE pk = ?",
                         [*(fields[k] for k in sets), pk])
