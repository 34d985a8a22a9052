{#- Step 15, opt-in (crane:heal:enabled): drift healing. After config.yaml is written, the
    node's baseline (what this run applied: config.yaml's hash, the services and binaries of
    its roles, the healing mode, a fingerprint of the settings) for the crane_drift beacon,
    which then reports each drift from it once (the reactor heals or records it). Off, the
    beacon and the baseline are removed. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set heal = crane.heal %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.config
{%- if heal.enabled %}

crane-heal-baseline-file-serialize:
  file.serialize:
    - name: {{ salt["crane_drift.path"]("baseline") }}
    - dataset: {{ salt["crane_drift.baseline"]() | json }}
    - serializer: json
    - makedirs: true
    - mode: "0644"
    - require:
      {#- only once config.yaml is the one this run rendered #}
      - file: crane-config-file-config-file-managed

crane-heal-beacon:
  crane_drift.beacon:
    - name: crane_drift
    - interval: {{ heal.interval }}
    - require:
      - file: crane-heal-baseline-file-serialize
{%- else %}

crane-heal-beacon:
  crane_drift.beacon:
    - name: crane_drift
    - enabled: false
    - require:
      - sls: {{ tplroot }}.validate

crane-heal-baseline-file-absent:
  file.absent:
    - names:
      - {{ salt["crane_drift.path"]("baseline") }}
      - {{ salt["crane_drift.path"]("seen") }}
    - require:
      - crane_drift: crane-heal-beacon
{%- endif %}
