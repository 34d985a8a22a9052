{#- Remove exactly the lines crane.pam added to sshd's PAM file (first in crane.clean, before
    the module itself goes with the craned package); every other line stays. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set pam = crane.pam %}

crane-pam-clean-sshd-crane-pam-absent:
  crane.pam_absent:
    - name: {{ pam.file }}
    - module_path: {{ pam.module_path }}
    - absolute: {{ pam.absolute_path }}
    - config_path: {{ crane.config_dir }}/config.yaml
