#!/bin/sh
# The out-of-tree SDK example (issue 2): install the build to a temporary
# prefix, build sdk/examples/hello_strategy against that prefix alone, and
# check that the installed dfm-run lists the plugin.
#   sdk_example_test.sh <dfm build folder> <example source folder>
set -eu
build=$(cd "$1" && pwd)
example=$(cd "$2" && pwd)
source_root=$(cd "$example/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "sdk_example: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "install failed"; }
for f in include/dfm/abi.h include/dfm/host.h include/dfm/strategy.h include/dfm/compute.h include/dfm/comm.h \
         include/dfm/sdk.hpp lib/cmake/dfm_sdk/dfm_sdkConfig.cmake lib/cmake/dfm_sdk/dfm_sdkConfigVersion.cmake \
         lib/cmake/dfm_sdk/dfm_sdkTargets.cmake lib/cmake/dfm_sdk/DfmPlugin.cmake lib/cmake/dfm_sdk/dfm_plugin.map \
         bin/dfm-run lib/dfm/plugins/libdfm_strategy_tp.so; do
  [ -e "$prefix/$f" ] || fail "the install lacks $f"
done

# Only the prefix: the example is copied out of the source tree, and no
# package registry is consulted.
cp -R "$example" "$work/src"
cmake -S "$work/src" -B "$work/hello" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
      -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1 \
  || { cat "$work/configure.log"; fail "configuring the example against $prefix failed"; }
cmake --build "$work/hello" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "building the example failed"; }
grep -q "$prefix/include" "$work/hello/compile_commands.json" || fail "the example did not use $prefix/include"
if grep -q "$source_root" "$work/hello/compile_commands.json"; then
  fail "the example compiled with the source tree's headers"
fi
plugin=$work/hello/libdfm_strategy_hello.so
[ -e "$plugin" ] || fail "no $plugin"
[ "$(nm -D --defined-only "$plugin" | awk '{print $NF}')" = dfm_plugin_entry_v1 ] \
  || fail "$plugin exports more than dfm_plugin_entry_v1"

unset DFM_PLUGIN_PATH
listing=$("$prefix/bin/dfm-run" --list-plugins --plugin-dir "$work/hello") || { echo "$listing"; fail "dfm-run --list-plugins failed"; }
echo "$listing"
echo "$listing" | grep -Eq "^strategy +hello +1\.0\.0 +[0-9]+\.[0-9]+ +$plugin" \
  || fail "dfm-run --list-plugins does not list the hello plugin from $plugin"
# The first-party plugins come from the install's own folder, next to bin/.
echo "$listing" | grep -Eq "^strategy +tp +.* $prefix/lib/dfm/plugins/libdfm_strategy_tp\.so" \
  || fail "dfm-run --list-plugins does not list tp from $prefix/lib/dfm/plugins"
echo "sdk_example: hello built against $prefix alone and listed by dfm-run"
