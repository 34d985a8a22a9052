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
  mongodb:
    # true: this node runs MongoDB from MongoDB's repository as the replica set DbReplSetName,
    # with DbUser/DbPassword above as its admin user (created before authorization is on)
    manage: false
    # the replica set's keyFile, e.g. the output of `openssl rand -base64 756` (secret)
    keyfile: ""
