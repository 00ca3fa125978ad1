"""Schema migrations: a list of SQL step lists; migration N sets ``PRAGMA user_version = N``.

Never edit a released migration; append a new one.
"""

MIGRATIONS: list[list[str]] = [
    # 1: realms, orgs, credentials, SCIM resources, indexes for the lookups IdPs make, the outbox.
    [
        """CREATE TABLE realms (
            name TEXT PRIMARY KEY,
            scim_enabled INTEGER NOT NULL DEFAULT 0,
            updated TEXT NOT NULL
        )""",
        """CREATE TABLE orgs (
            pk INTEGER PRIMARY KEY,
            realm TEXT NOT NULL,
            org_id TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            auth_mode TEXT NOT NULL,
            auth_config TEXT NOT NULL DEFAULT '{}',
            federation TEXT NOT NULL DEFAULT 'none',
            settings TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            UNIQUE (realm, org_id)
        )""",
        """CREATE TABLE credentials (
            pk INTEGER PRIMARY KEY,
            org_pk INTEGER NOT NULL REFERENCES orgs(pk) ON DELETE CASCADE,
            cred_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            username TEXT,
            hash TEXT NOT NULL,
            created TEXT NOT NULL,
            last_used TEXT,
            expires TEXT,
            revoked TEXT
        )""",
        "CREATE INDEX ix_credentials_org ON credentials(org_pk)",
        """CREATE TABLE resources (
            pk INTEGER PRIMARY KEY,
            org_pk INTEGER NOT NULL REFERENCES orgs(pk) ON DELETE CASCADE,
            type TEXT NOT NULL,
            id TEXT NOT NULL UNIQUE,
            external_id TEXT,
            name_lc TEXT NOT NULL,
            data TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            created TEXT NOT NULL,
            modified TEXT NOT NULL
        )""",
        # userName (users) and displayName (groups) are unique per org, case-insensitively.
        "CREATE UNIQUE INDEX ux_resources_name ON resources(org_pk, type, name_lc)",
        "CREATE INDEX ix_resources_external ON resources(org_pk, type, external_id)",
        "CREATE INDEX ix_resources_org_id ON resources(org_pk, type, id)",
        """CREATE TABLE emails (
            res_pk INTEGER NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
            org_pk INTEGER NOT NULL,
            value_lc TEXT NOT NULL,
            type_lc TEXT
        )""",
        "CREATE INDEX ix_emails_value ON emails(org_pk, value_lc)",
        "CREATE INDEX ix_emails_res ON emails(res_pk)",
        """CREATE TABLE members (
            group_pk INTEGER NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
            member_pk INTEGER NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
            attrs TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (group_pk, member_pk)
        ) WITHOUT ROWID""",
        "CREATE INDEX ix_members_member ON members(member_pk)",
        """CREATE TABLE outbox (
            pk INTEGER PRIMARY KEY,
            org_pk INTEGER NOT NULL REFERENCES orgs(pk) ON DELETE CASCADE,
            resource_type TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            action TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt TEXT NOT NULL,
            last_error TEXT,
            done TEXT
        )""",
        "CREATE INDEX ix_outbox_pending ON outbox(done, next_attempt)",
        "CREATE INDEX ix_outbox_resource ON outbox(resource_id, pk)",
        """CREATE TABLE events (
            pk INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            org_pk INTEGER,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX ix_events_org_at ON events(org_pk, at)",
    ],
    # 2: Keycloak provisioning: which Keycloak object each SCIM resource is, leases for single delivery,
    #    and drift records (differences between SCIM state and Keycloak).
    [
        """CREATE TABLE kc_links (
            org_pk INTEGER NOT NULL REFERENCES orgs(pk) ON DELETE CASCADE,
            resource_type TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            kc_id TEXT NOT NULL,
            origin TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT '{}',
            updated TEXT NOT NULL,
            PRIMARY KEY (org_pk, resource_id)
        )""",
        "CREATE INDEX ix_kc_links_kc ON kc_links(kc_id)",
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            until REAL NOT NULL
        )""",
        """CREATE TABLE drift (
            pk INTEGER PRIMARY KEY,
            org_pk INTEGER NOT NULL REFERENCES orgs(pk) ON DELETE CASCADE,
            resource_type TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            expected TEXT,
            actual TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            resolved TEXT
        )""",
        "CREATE INDEX ix_drift_org ON drift(org_pk, resolved)",
        "CREATE UNIQUE INDEX ux_drift_open ON drift(org_pk, resource_id, kind) WHERE resolved IS NULL",
    ],
    # 3: organizations as Keycloak lists them (discovered / vanished) for reconcile.
    [
        """CREATE TABLE kc_orgs (
            realm TEXT NOT NULL,
            org_id TEXT NOT NULL,
            name TEXT,
            alias TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            vanished TEXT,
            PRIMARY KEY (realm, org_id)
        )""",
        "ALTER TABLE orgs ADD COLUMN vanished TEXT",
    ],
    # 4: unfiltered listing pages in pk order without sorting the org: (org_pk, type) + implicit rowid.
    [
        "CREATE INDEX ix_resources_org_type_pk ON resources(org_pk, type)",
    ],
    # 5: JWK Sets shared by all processes: the worker refreshes them, web workers pick them up.
    [
        """CREATE TABLE jwks (
            uri TEXT PRIMARY KEY,
            keys TEXT NOT NULL DEFAULT '{}',
            fetched REAL,
            attempted REAL NOT NULL,
            error TEXT
        )""",
    ],
    # 6: concurrent outbox delivery: per-resource queues of pending entries (heads found by index), and pending
    #    entries are never deleted with their org (cancel or deliver them first, with an audit event).
    [
        "CREATE INDEX ix_outbox_org_resource_pending ON outbox(org_pk, resource_id, pk) WHERE done IS NULL",
        "CREATE INDEX ix_outbox_org_pending ON outbox(org_pk, resource_type, pk) WHERE done IS NULL",
        """CREATE TRIGGER outbox_pending_kept BEFORE DELETE ON orgs
           WHEN EXISTS (SELECT 1 FROM outbox WHERE org_pk = OLD.pk AND done IS NULL)
           BEGIN SELECT RAISE(ABORT, 'organization has pending outbox entries: deliver or cancel them first'); END""",
    ],
    # 7: /metrics without scans: resource totals kept by triggers (FK cascades fire them too), failing JWK Sets
    #    found through a partial index.
    [
        "CREATE TABLE resource_totals (type TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO resource_totals (type, n) SELECT type, count(*) FROM resources GROUP BY type",
        """CREATE TRIGGER resource_totals_insert AFTER INSERT ON resources BEGIN
           INSERT OR IGNORE INTO resource_totals (type, n) VALUES (NEW.type, 0);
           UPDATE resource_totals SET n = n + 1 WHERE type = NEW.type; END""",
        """CREATE TRIGGER resource_totals_delete AFTER DELETE ON resources BEGIN
           UPDATE resource_totals SET n = n - 1 WHERE type = OLD.type; END""",
        "CREATE INDEX ix_jwks_failing ON jwks(uri) WHERE error IS NOT NULL",
    ],
    # 8: /metrics counts open orgs through a small partial index instead of reading every org row.
    [
        "CREATE INDEX ix_orgs_open ON orgs(realm) WHERE enabled = 1 AND vanished IS NULL",
    ],
]
