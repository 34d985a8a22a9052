{#- Step 2: CraneSched's packages for this minion's roles, at the pinned version, plus what the
    packages miss: the crane user on control nodes, 0755 binaries (they ship 0777), and
    CraneSched's directories (dpkg does not run CraneSched's post-install script). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- from tplroot ~ "/libtofs.jinja" import files_switch with context %}
{%- set install = crane.install %}
{%- set method = install.method %}

include:
  - {{ tplroot }}.validate

{%- set apt_list = "/etc/apt/sources.list.d/cranesched.list" %}
{#- pkgrepo.managed drops apt options such as [trusted=yes] when it compares lines, so test=True
    would always report a change: an unsigned repository is a plain sources file instead. #}
{%- set trusted_apt = method == "repo" and grains.os_family == "Debian" and install.repo.trusted %}
{%- set repo_req = {"file": "crane-package-repo-file-managed"} if trusted_apt
                   else {"pkgrepo": "crane-package-repo-pkgrepo-managed"} %}
{%- if trusted_apt %}

crane-package-repo-file-managed:
  file.managed:
    - name: {{ apt_list }}
    - contents: {{ ("deb [trusted=yes] " ~ install.repo.url ~ " " ~ install.repo.dist ~ " " ~ install.repo.components) | trim | json }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - crane: crane-validate-config

crane-package-repo-refresh-cmd-run:
  cmd.run:
    - name: apt-get update -o Dir::Etc::sourcelist={{ apt_list }} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
    - onchanges:
      - file: crane-package-repo-file-managed
{%- elif method == "repo" %}

crane-package-repo-pkgrepo-managed:
  pkgrepo.managed:
{%-   if grains.os_family == "Debian" %}
    - name: deb {{ install.repo.url }} {{ install.repo.dist }} {{ install.repo.components }}
    - file: {{ apt_list }}
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
      - crane: crane-validate-config
{%- elif method == "files" %}
{%-   for key, pkg in crane.packages.items() %}
{%-     set src = install.files.get(key, {}) %}

crane-package-file-{{ key }}-file-managed:
  file.managed:
    - name: /var/cache/crane-formula/{{ src.get("source", key) | replace("\\", "/") | regex_replace("^.*/", "") }}
    - source: {{ src.get("source") }}
{%-     if src.get("source_hash") %}
    - source_hash: {{ src.source_hash }}
{%-     else %}
    - skip_verify: {{ not src.get("source", "").startswith("https://") }}
{%-     endif %}
    - makedirs: true
    - require:
      - crane: crane-validate-config
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
      - crane: crane-validate-config
{%- endif %}

{%- if method in ("repo", "files") and crane.packages %}
{%-   set repo_reqs = [repo_req] if method == "repo" else [] %}
{%-   set pins = {} %}
{%-   for pkg in crane.packages.values() %}
{%-     do pins.update({pkg.name: pkg.version}) %}
{%-   endfor %}
{%-   if trusted_apt %}
{%-     do repo_reqs.append({"cmd": "crane-package-repo-refresh-cmd-run"}) %}
{%-   endif %}

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
      - crane: crane-validate-config
{%-   for req in repo_reqs %}
      - {{ req | yaml(false) }}
{%-   endfor %}

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
      - {{ pkg.name }}: /var/cache/crane-formula/{{ install.files.get(key, {}).get("source", key) | regex_replace("^.*/", "") }}
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
crane-package-restore-{{ key }}-pkg-installed:
  pkg.installed:
    - name: {{ pkg.name }}
{%-     if method == "repo" %}
{%-       if pkg.version %}
    - version: {{ pkg.version | json }}
{%-       endif %}
{%-     else %}
    - sources:
      - {{ pkg.name }}: /var/cache/crane-formula/{{ install.files.get(key, {}).get("source", key) | regex_replace("^.*/", "") }}
{%-     endif %}
    - reinstall: true
    - unless:
{%-     for path in crane.binaries[key].values() %}
      - fun: file.file_exists
        path: {{ path }}
{%-     endfor %}
    - require:
      - pkg: crane-package-install-pkg-installed
{%-   endfor %}
{%- endif %}

{%- for key in crane.packages %}
{%-   for file, path in crane.binaries.get(key, {}).items() %}

crane-package-binary-{{ file }}-file-managed:
  file.managed:
    - name: {{ path }}
{%-     if method == "binaries" %}
    - source: {{ install.binaries.source.rstrip("/") }}/{{ file }}
{%-       if install.binaries.hashes.get(file) %}
    - source_hash: {{ install.binaries.hashes[file] }}
{%-       endif %}
    - makedirs: true
{%-     else %}
    {#- the packages install the binaries world-writable; only fix the mode #}
    - replace: false
    - create: false
{%-     endif %}
    - user: root
    - group: root
    - mode: "0755"
    - require:
{%-     if method == "binaries" %}
      - crane: crane-validate-config
{%-     else %}
      - pkg: crane-package-restore-{{ key }}-pkg-installed
{%-     endif %}
{%-   endfor %}
{%- endfor %}

{%- if method == "binaries" %}
{%-   for unit in crane.services %}

crane-package-unit-{{ unit }}-file-managed:
  file.managed:
    - name: {{ crane.unit_dir }}/{{ unit }}.service
    - source: {{ files_switch(unit ~ ".service.jinja") }}
    - template: jinja
    - context:
        bin_dir: {{ (crane.bin_dir or "/usr/bin") | json }}
        user: {{ crane.user | json }}
        group: {{ crane.group | json }}
    - mode: "0644"
    - require:
      - crane: crane-validate-config
{%-   endfor %}
{%- endif %}

{%- if "control" in crane.roles %}

crane-package-user-group-present:
  group.present:
    - name: {{ crane.group }}
    - system: true
    - require:
      - crane: crane-validate-config

crane-package-user-user-present:
  user.present:
    - name: {{ crane.user }}
    - gid: {{ crane.group }}
    - system: true
    - home: {{ crane.base_dir.rstrip("/") }}
    - createhome: false
    - shell: {{ crane.nologin }}
    - require:
      - group: crane-package-user-group-present
{%- endif %}

crane-package-dirs-etc-file-directory:
  file.directory:
    - name: {{ crane.config_dir }}
    - user: root
    - group: root
    - mode: "0755"
    - require:
      - crane: crane-validate-config

crane-package-dirs-base-file-directory:
  file.directory:
    - name: {{ crane.base_dir }}
{%- if "control" in crane.roles %}
    - user: {{ crane.user }}
    - group: {{ crane.group }}
{%- else %}
    - user: root
    - group: root
{%- endif %}
    - mode: "0755"
    - require:
      - crane: crane-validate-config
{%- if "control" in crane.roles %}
      - user: crane-package-user-user-present
{%- endif %}
