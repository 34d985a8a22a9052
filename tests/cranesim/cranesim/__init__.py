"""cranesim: a behavioural test double of CraneSched (cranectld, craned, cinfo, ccontrol, ...).

Only the standard library and PyYAML are used, so the programs run on any node that has
python3 and python3-yaml.  ``VERSION`` is what the programs report (``Version=``, ``-v``): the
build's VERSION file, written into ``_version.py`` when the Debian packages are built (it may
differ from the package version, as CraneSched's does); in a source tree it comes from
``CRANESIM_VERSION``.
"""

import os

try:  # written by the package build
    from cranesim._version import VERSION
except ImportError:  # running from the source tree (tests)
    VERSION = os.environ.get("CRANESIM_VERSION", "1.1.2")
