{#- Control node, crane:mongodb:manage: MongoDB from MongoDB's own repository, run as the
    single-member replica set cranectld needs, in the order of CraneSched's MongoDB guide:
    mongod first runs with replSetName and authorization off; the replica set is initiated
    once and the admin user (DbUser/DbPassword of crane:database, role root) created; then
    mongod.conf gets the keyFile (from the pillar, 0400, owned by mongod's user) and
    `authorization: enabled` and mongod restarts. A later run finds the user authenticating
    and changes nothing. cranectld is ordered after mongod (systemd drop-in). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- from tplroot ~ "/libtofs.jinja" import files_switch with context %}
{%- set mongodb = crane.mongodb %}
{%- set release = mongodb.release %}

include:
  - {{ tplroot }}.validate
{%- if "control" in crane.roles and mongodb.manage %}
  - {{ tplroot }}.service

crane-mongodb-repo-pkgrepo-managed:
  pkgrepo.managed:
{%-   if grains.os_family == "RedHat" %}
    - name: mongodb-org-{{ release }}
    - humanname: MongoDB {{ release }} (repo.mongodb.org)
    - baseurl: {{ mongodb.repo_url }}/yum/redhat/{{ grains.osmajorrelease }}/mongodb-org/{{ release }}/{{ grains.cpuarch }}/
    - gpgcheck: 1
    - gpgkey: {{ mongodb.gpgkey }}
    - enabled: 1
{%-   else %}
{%-     set os = "ubuntu" if grains.os == "Ubuntu" else "debian" %}
{%-     set keyring = "/etc/apt/keyrings/mongodb-server-" ~ release ~ ".gpg" %}
{%-     set suite = grains.oscodename ~ "/mongodb-org/" ~ release %}
{%-     set component = "multiverse" if os == "ubuntu" else "main" %}
    - name: deb [signed-by={{ keyring }}] {{ mongodb.repo_url }}/apt/{{ os }} {{ suite }} {{ component }}
    - file: /etc/apt/sources.list.d/mongodb-org-{{ release }}.list
    - key_url: {{ mongodb.gpgkey }}
    - aptkey: false
{%-   endif %}
    - require:
      - crane: crane-validate-config

crane-mongodb-pkg-installed:
  pkg.installed:
    - pkgs: {{ mongodb.packages | json }}
    - require:
      - pkgrepo: crane-mongodb-repo-pkgrepo-managed

{#- the key is read from the pillar on the node: it never travels through SLS data #}
crane-mongodb-keyfile-file-managed:
  file.managed:
    - name: {{ mongodb.keyfile_path }}
    - contents_pillar: crane:mongodb:keyfile
    - user: {{ mongodb.user }}
    - group: {{ mongodb.group }}
    - mode: "0400"
    - show_changes: false
    - require:
      - pkg: crane-mongodb-pkg-installed

{#- authorization off until the admin user exists: written only while mongod.conf does not
    have authorization on yet (a fresh install, or one this run is bringing up) #}
crane-mongodb-conf-bootstrap-file-managed:
  file.managed:
    - name: {{ mongodb.conf_file }}
    - source: {{ files_switch("mongod.conf.jinja") }}
    - template: jinja
    - context:
        mongodb: {{ mongodb | json }}
        security: false
    - mode: "0644"
    - unless: {{ ("grep -qs '^ *authorization: *enabled' " ~ mongodb.conf_file) | json }}
    - require:
      - pkg: crane-mongodb-pkg-installed

crane-mongodb-bootstrap-service-running:
  service.running:
    - name: {{ mongodb.service }}
    - enable: true
    - require:
      - file: crane-mongodb-keyfile-file-managed
    - watch:
      - file: crane-mongodb-conf-bootstrap-file-managed

crane-mongodb-replica-set:
  crane.mongodb_replica_set:
    - name: {{ mongodb.member }}
    - timeout: {{ mongodb.ready_timeout }}
    - mongosh: {{ mongodb.mongosh }}
    - require:
      - service: crane-mongodb-bootstrap-service-running

crane-mongodb-conf-file-managed:
  file.managed:
    - name: {{ mongodb.conf_file }}
    - source: {{ files_switch("mongod.conf.jinja") }}
    - template: jinja
    - context:
        mongodb: {{ mongodb | json }}
        security: true
    - mode: "0644"
    - require:
      - crane: crane-mongodb-replica-set

crane-mongodb-service-running:
  service.running:
    - name: {{ mongodb.service }}
    - enable: true
    - watch:
      - file: crane-mongodb-conf-file-managed
      - file: crane-mongodb-keyfile-file-managed
    - require_in:
      - service: crane-service-cranectld-service-running

crane-mongodb-cranectld-dropin-file-managed:
  file.managed:
    - name: {{ crane.unit_dir }}/cranectld.service.d/crane-mongodb.conf
    - contents: |
        # Managed by Salt (crane formula): crane:mongodb:manage.
        [Unit]
        Wants={{ mongodb.service }}.service
        After={{ mongodb.service }}.service
    - makedirs: true
    - mode: "0644"
    - require:
      - crane: crane-validate-config
    - require_in:
      - service: crane-service-cranectld-service-running
{%- endif %}
