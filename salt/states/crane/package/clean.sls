{#- Remove CraneSched's packages (or copied binaries and units). CraneSched's data under
    CraneBaseDir stays unless crane:clean:remove_data is true. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - {{ tplroot }}.config.clean

{%- if crane.install.method == "binaries" %}
{%-   for key, files in crane.binaries.items() %}
{%-     for file, path in files.items() %}

crane-package-clean-binary-{{ file }}-file-absent:
  file.absent:
    - name: {{ path }}
    - require:
      - sls: {{ tplroot }}.config.clean
{%-     endfor %}
{%-   endfor %}
{%-   for unit in crane.units %}

crane-package-clean-unit-{{ unit }}-file-absent:
  file.absent:
    - name: {{ crane.unit_dir }}/{{ unit }}.service
    - require:
      - sls: {{ tplroot }}.config.clean
{%-   endfor %}
{%- else %}

crane-package-clean-pkg-removed:
  pkg.removed:
    - pkgs: {{ crane.package_names.values() | list | json }}
    - require:
      - sls: {{ tplroot }}.config.clean

crane-package-clean-repo-file-absent:
  file.absent:
    - name: {{ crane.repo_file }}
{%- endif %}

{#- crane.remove_data_refusal: CraneBaseDir is a system directory (crane/clean.sls fails) #}
{%- if crane.clean.remove_data and not crane.remove_data_refusal %}

crane-package-clean-data-file-absent:
  file.absent:
    - name: {{ crane.base_dir }}
    - require:
      - sls: {{ tplroot }}.config.clean
{%- endif %}

crane-package-clean-grains-absent:
  grains.absent:
    - name: crane
    - destructive: true
    - force: true
