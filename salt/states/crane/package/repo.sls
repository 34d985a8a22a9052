{#- Step 2: the package repository (install method `repo`): an apt sources file or a
    pkgrepo, at crane:repo_file. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set install = crane.install %}

include:
  - {{ tplroot }}.validate
{#- pkgrepo.managed drops apt options such as [trusted=yes] when it compares lines, so test=True
    would always report a change: an unsigned repository is a plain sources file instead. #}
{%- set trusted_apt = install.method == "repo" and grains.os_family == "Debian" and install.repo.trusted %}
{%- if trusted_apt %}

crane-package-repo-file-managed:
  file.managed:
    - name: {{ crane.repo_file }}
    - contents: {{ ("deb [trusted=yes] " ~ install.repo.url ~ " " ~ install.repo.dist ~ " " ~ install.repo.components) | trim | json }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - sls: {{ tplroot }}.validate

crane-package-repo-refresh-cmd-run:
  cmd.run:
    - name: apt-get update -o Dir::Etc::sourcelist={{ crane.repo_file }} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
    - onchanges:
      - file: crane-package-repo-file-managed
{%- elif install.method == "repo" %}

crane-package-repo-pkgrepo-managed:
  pkgrepo.managed:
{%-   if grains.os_family == "Debian" %}
    - name: deb {{ install.repo.url }} {{ install.repo.dist }} {{ install.repo.components }}
    - file: {{ crane.repo_file }}
{%-     if install.repo.gpgkey %}
    - key_url: {{ install.repo.gpgkey }}
{%-     endif %}
{%-   else %}
    - name: cranesched
    - humanname: CraneSched
    - baseurl: {{ install.repo.url }}
    - gpgcheck: {{ 1 if install.repo.gpgcheck else 0 }}
{%-     if install.repo.gpgkey %}
    - gpgkey: {{ install.repo.gpgkey }}
{%-     endif %}
{%-   endif %}
    - require:
      - sls: {{ tplroot }}.validate
{%- endif %}
