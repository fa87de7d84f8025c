#!/bin/bash
# Two MTA hosts sharing one PostgreSQL keyring, end to end through real
# Postfix instances: tests/pg/twohost.sh (TAP lines).
cd "$(dirname "$0")/../.." || exit 1
exec bash tests/pg/twohost.sh
