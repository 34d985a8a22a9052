# database.yaml for cranectld: only the control node gets this pillar (see top.sls), and the
# formula writes it 0600, owned by crane, without ever showing its content.
crane:
  database:
    CraneEmbeddedDbBackend: Unqlite
    CraneCtldDbPath: cranectld/embedded.db
    DbUser: admin
    DbPassword: change-me
    DbHost: localhost
    DbPort: 27017
    DbReplSetName: crane_rs
    DbName: crane_db
