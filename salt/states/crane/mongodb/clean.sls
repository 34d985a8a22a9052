{#- The MongoDB preflight changes nothing on the node. A MongoDB the formula runs
    (crane:mongodb:manage) holds the cluster's accounting data: crane.clean leaves it running
    and removes only the drop-in that orders cranectld after it. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- if "control" in crane.roles and crane.mongodb.manage %}

crane-mongodb-clean-cranectld-dropin-file-absent:
  file.absent:
    - name: {{ crane.unit_dir }}/cranectld.service.d/crane-mongodb.conf
{%- else %}

crane-mongodb-clean-nothing-to-remove:
  test.succeed_without_changes:
    - name: the MongoDB preflight leaves nothing behind
{%- endif %}
