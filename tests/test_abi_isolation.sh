#!/bin/sh
# ABI isolation (DESIGN §2/§3): plugins build against the SDK alone and export
# exactly one symbol.
#   test_abi_isolation.sh <plugins source folder> <built plugins folder>
# (a) no plugin source includes a core header ("dfm/core/...");
# (b) every built plugin exports exactly one dynamic symbol, dfm_plugin_entry_v1.
set -u
sources=$1
built=$2
status=0

includes=$(grep -rnE '#[[:space:]]*include[[:space:]]*[<"]dfm/core/' "$sources" \
           --include='*.c' --include='*.h' --include='*.cpp' --include='*.hpp' --include='*.cu' --include='*.cuh')
if [ -n "$includes" ]; then
  echo "plugins must build against the SDK alone; these lines include core headers:"
  echo "$includes"
  status=1
fi

count=0
for so in "$built"/*.so; do
  [ -e "$so" ] || continue
  count=$((count + 1))
  exported=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort)
  if [ "$exported" != "dfm_plugin_entry_v1" ]; then
    echo "$so: exports $(echo "$exported" | wc -w) symbols, expected only dfm_plugin_entry_v1:"
    echo "$exported" | sed 's/^/  /'
    status=1
  fi
done
if [ "$count" -eq 0 ]; then
  echo "$built: no plugin .so found (build the plugins first)"
  status=1
fi
[ "$status" -eq 0 ] && echo "ABI isolation: no core include under $sources; $count plugins export only dfm_plugin_entry_v1"
exit $status
