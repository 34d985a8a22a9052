{#- With TLS.Enabled in crane:config: the certificate and key files this node's daemons read
    (cranectld: CA, internal and external pairs; craned and cfored: CA and internal pair; the
    CLIs: CA and external certificate), written when crane:tls:manage is on, each from the
    pillar crane:tls:files when it holds the file's name, else from crane:tls:source (keys
    0600, certificates 0644; owned by crane on control nodes, where cranectld runs as crane,
    else root; contents never shown). Then the gate: a file unset, missing or empty (the daemons exit at
    start) fails here, naming it, before config.yaml is written or any daemon restarted. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set files = salt["crane.tls_files"](crane.config, crane.services, crane.roles) if crane.roles else {} %}
{%- set owner = crane.user if "control" in crane.roles else "root" %}
{%- set group = crane.group if "control" in crane.roles else "root" %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.package
  - {{ tplroot }}.config
{%- if files and crane.tls.manage %}
{%-   for key, path in files.items() if path %}
{%-     set file_name = path.split("/")[-1] %}

crane-tls-{{ key }}-file-managed:
  file.managed:
    - name: {{ path }}
{%-     if file_name in crane.tls.pillar_files %}
    {#- the PEM text is read from the pillar on the node: it never travels through SLS data #}
    - contents_pillar: {{ "crane:tls:files:" ~ file_name }}
{%-     else %}
    - source: {{ crane.tls.source.rstrip("/") }}/{{ file_name }}
{%-     endif %}
    - user: {{ owner }}
    - group: {{ group }}
    - mode: "{{ "0600" if key.endswith("KeyFilePath") else "0644" }}"
    - makedirs: true
    - show_changes: false
    - require:
      - crane: crane-validate-config
{%-     if "control" in crane.roles %}
      - user: crane-package-user-user-present
{%-     endif %}
    - require_in:
      - crane: crane-tls-ready
{%-   endfor %}
{%- endif %}
{%- if files %}

crane-tls-ready:
  crane.tls_ready:
    - name: {{ crane.host }}
    - files: {{ files | json }}
    - require:
      - crane: crane-validate-config
    - require_in:
      - file: crane-config-file-config-file-managed
{%- endif %}
