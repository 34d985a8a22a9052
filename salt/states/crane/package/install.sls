{#- Step 2: CraneSched's packages for this minion's roles, at the pinned version (install
    methods `repo` and `files`), and the runtime libraries they need. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set install = crane.install %}
{%- set method = install.method %}

include:
  - {{ tplroot }}.validate
{%- if method == "repo" %}
  - .repo
{%- endif %}

{%- if method == "files" %}
{%-   for key, pkg in crane.packages.items() %}
{%-     set src = install.files.get(key, {}) %}

crane-package-file-{{ key }}-file-managed:
  file.managed:
    - name: {{ pkg.cache_file }}
    - source: {{ src.get("source") }}
{%-     if src.get("source_hash") %}
    - source_hash: {{ src.source_hash }}
{%-     else %}
    - skip_verify: {{ not src.get("source", "").startswith("https://") }}
{%-     endif %}
    - makedirs: true
    - require:
      - sls: {{ tplroot }}.validate
{%-   endfor %}
{%- endif %}
{#- CraneSched's packages declare no dependencies: the libraries its binaries link come
    from crane:runtime_packages (per package, parameters/os_family/<family>.yaml). #}
{%- set runtime = [] %}
{%- for key in crane.packages %}
{%-   for name in crane.runtime_packages.get(key, []) if name not in runtime %}
{%-     do runtime.append(name) %}
{%-   endfor %}
{%- endfor %}
{%- if runtime %}

crane-package-runtime-pkg-installed:
  pkg.installed:
    - pkgs: {{ runtime | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%- endif %}

{%- if method in ("repo", "files") and crane.packages %}
{%-   set pins = {} %}
{%-   for pkg in crane.packages.values() %}
{%-     do pins.update({pkg.name: pkg.version}) %}
{%-   endfor %}

{#- Before any package changes: no silent downgrade, no version change under a running craned
    (every targeted craned would restart at once), and under test=True a pinned version that is
    not in the repository fails as the real run would. #}
crane-package-version-checked:
  crane.package_versions:
    - name: {{ crane.host | json }}
    - packages: {{ pins | json }}
    - guarded: {{ ({crane.packages.craned.name: "craned"} if "craned" in crane.packages else {}) | json }}
    - switches:
        allow_downgrade: {{ crane.allow_downgrade | to_bool }}
        restart_on_version: {{ crane.restart_on_version | to_bool }}
    - repository: {{ method == "repo" }}
    - require:
      - sls: {{ tplroot }}.validate
{%-   if method == "repo" %}
      - sls: {{ tplroot }}.package.repo
{%-   endif %}

crane-package-install-pkg-installed:
  pkg.installed:
{%-   if method == "repo" %}
    - pkgs:
{%-     for key, pkg in crane.packages.items() %}
{#-       rpm reports version-release (1.1.2-1) and RPM versions hold no "-": a pillar
          version without a release pins any release of it (Salt resolves the wildcard). #}
{%-       set pin = pkg.version ~ ("-*" if grains.os_family == "RedHat" and pkg.version and "-" not in pkg.version else "") %}
      - {{ pkg.name }}{{ (": " ~ (pin | json)) if pin else "" }}
{%-     endfor %}
    - require:
      - crane: crane-package-version-checked
{%-   else %}
    - sources:
{%-     for key, pkg in crane.packages.items() %}
      - {{ pkg.name }}: {{ pkg.cache_file }}
{%-     endfor %}
    - require:
      - crane: crane-package-version-checked
{%-     for key in crane.packages %}
      - file: crane-package-file-{{ key }}-file-managed
{%-     endfor %}
{%-   endif %}
{%-   for key, pkg in crane.packages.items() if crane.binaries.get(key) %}

{#- A file of the installed package that is gone (an rm of /usr/libexec/csupervisor) is not
    seen by pkg.installed: reinstall the package when one of its binaries is missing. #}
crane-package-restore-{{ key }}-crane-package-restored:
  crane.package_restored:
    - name: {{ pkg.name }}
    - binaries: {{ crane.binaries[key].values() | list | json }}
{%-     if method == "repo" %}
{%-       if pkg.version %}
    - version: {{ pkg.version | json }}
{%-       endif %}
{%-     else %}
    - sources:
      - {{ pkg.name }}: {{ pkg.cache_file }}
{%-     endif %}
    - require:
      - pkg: crane-package-install-pkg-installed
{%-   endfor %}
{%- endif %}

