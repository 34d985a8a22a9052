{#- Compute nodes, opt-in (crane:pam:manage): pam_crane.so in sshd's PAM stack, so only users
    with a running job on the node can SSH in. After the daemons are up: CraneSched's guide
    says to configure PAM only once the cluster works, since pam_crane refuses every non-root
    user while craned cannot answer it. The state itself waits until cinfo lists this node up
    and craned serves PAM, and otherwise fails with the reason and leaves the file alone.
    Root skips pam_crane (a pam_succeed_if line before each pam_crane line). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set pam = crane.pam %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.service
  - {{ tplroot }}.verify
{%- if "compute" in crane.roles and pam.manage %}

crane-pam-sshd-crane-pam-configured:
  crane.pam_configured:
    - name: {{ pam.file }}
    - node: {{ crane.host }}
    - module_path: {{ pam.module_path }}
    - absolute: {{ pam.absolute_path }}
    - account_include: {{ pam.account_include }}
    - session_include: {{ pam.session_include }}
    - config_path: {{ crane.config_dir }}/config.yaml
    - timeout: {{ pam.timeout }}
    - interval: {{ pam.interval }}
    - require:
      - crane: crane-validate-config
      - sls: {{ tplroot }}.service.running
{%- endif %}
