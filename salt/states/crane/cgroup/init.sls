{#- Compute nodes: the cgroup controllers craned needs. On cgroup v2 a oneshot unit enables
    them in the root's cgroup.subtree_control at every boot, before craned; with gres, bpffs
    is mounted at /sys/fs/bpf (craned's device control on v2 is a BPF program). Then the gate:
    a hybrid tree (CraneSched: undefined cgroup version) or a missing controller fails here,
    before config.yaml is written or craned restarted. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- from tplroot ~ "/libtofs.jinja" import files_switch with context %}
{%- set cgroup = crane.cgroup %}
{%- set unit = cgroup.unit %}
{%- set mode = salt["crane.cgroup_mode"](cgroup.root) %}
{#- Only on v2: elsewhere the unit's condition would skip it and service.running would fail. #}
{%- set unit_managed = cgroup.enable_controllers and mode == "v2" %}
{%- set ns = namespace(gres=false) %}
{%- for group in crane.config.get("Nodes") or [] %}
{%-   if group.get("gres") and crane.host in salt["crane.expand_hostlist"](group.name) %}
{%-     set ns.gres = true %}
{%-   endif %}
{%- endfor %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.config
{%- if "compute" in crane.roles and cgroup.manage %}
{%-   if unit_managed %}

crane-cgroup-controllers-unit-file-managed:
  file.managed:
    - name: {{ crane.unit_dir }}/{{ unit }}.service
    - source: {{ files_switch(unit ~ ".service.jinja") }}
    - template: jinja
    - context:
        root: {{ cgroup.root | json }}
        controllers: {{ cgroup.controllers | json }}
    - mode: "0644"
    - require:
      - sls: {{ tplroot }}.validate

crane-cgroup-controllers-dropin-file-managed:
  file.managed:
    - name: {{ crane.unit_dir }}/craned.service.d/{{ unit }}.conf
    - contents: |
        # Managed by Salt (crane formula): crane:cgroup:enable_controllers.
        [Unit]
        Wants={{ unit }}.service
        After={{ unit }}.service
    - makedirs: true
    - mode: "0644"
    - require:
      - sls: {{ tplroot }}.validate

crane-cgroup-controllers-service-running:
  service.running:
    - name: {{ unit }}
    - enable: true
    - require:
      - file: crane-cgroup-controllers-unit-file-managed
      - file: crane-cgroup-controllers-dropin-file-managed
    - watch:
      - file: crane-cgroup-controllers-unit-file-managed
{%-   endif %}
{%-   if cgroup.bpffs and ns.gres and mode == "v2" %}

crane-cgroup-bpffs-mount-mounted:
  mount.mounted:
    - name: /sys/fs/bpf
    - device: bpf
    - fstype: bpf
    - mkmnt: true
    - persist: true
    - require:
      - sls: {{ tplroot }}.validate
{%-   endif %}

crane-cgroup-ready:
  crane.cgroup_ready:
    - name: {{ crane.host }}
    - root: {{ cgroup.root | json }}
{%-   if unit_managed %}
    - enabled_by: {{ unit }}
{%-   endif %}
    - require:
      - sls: {{ tplroot }}.validate
{%-   if unit_managed %}
      - service: crane-cgroup-controllers-service-running
{%-   endif %}
    - require_in:
      - file: crane-config-file-config-file-managed
{%- endif %}
