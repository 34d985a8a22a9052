#!/bin/bash
# Shipped in the DEB control archive next to the control file, exactly like CPack's
# CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA does it: dpkg never runs a member with this name.
if ! id -u crane &>/dev/null; then
    useradd -r -s /sbin/nologin crane
fi

mkdir -p /var/crane
chown -R crane:crane /var/crane
chmod 755 /var/crane

mkdir -p /etc/crane
chown -R crane:crane /etc/crane
chmod 755 /etc/crane

if [ ! -f /etc/crane/config.yaml ] && [ -f /etc/crane/config.yaml.sample ]; then
    cp /etc/crane/config.yaml.sample /etc/crane/config.yaml
    chown crane:crane /etc/crane/config.yaml
    chmod 644 /etc/crane/config.yaml
    echo "Created new configuration file: /etc/crane/config.yaml"
fi

if [ ! -f /etc/crane/database.yaml ] && [ -f /etc/crane/database.yaml.sample ]; then
    cp /etc/crane/database.yaml.sample /etc/crane/database.yaml
    chown crane:crane /etc/crane/database.yaml
    chmod 600 /etc/crane/database.yaml
    echo "Created new configuration file: /etc/crane/database.yaml"
fi

exit 0
