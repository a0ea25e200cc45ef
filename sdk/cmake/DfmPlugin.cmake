# dfm_add_plugin(<target> KIND <strategy|compute|comm> NAME <name> SOURCES ...)
#
# Builds a dfm plugin as a MODULE library named libdfm_<kind>_<name>.so that
# links the SDK headers only, hides every symbol but the entry point
# (version script + hidden visibility) and refuses undefined symbols at link
# time, so a missing function shows up when the plugin is built, not loaded.

# The version script is found next to this file, in the source tree and installed alike.
function(dfm_add_plugin target)
  cmake_parse_arguments(P "" "KIND;NAME;OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT P_KIND OR NOT P_NAME OR NOT P_SOURCES)
    message(FATAL_ERROR "dfm_add_plugin(${target}): KIND, NAME and SOURCES are required")
  endif()
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE dfm::sdk)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME "dfm_${P_KIND}_${P_NAME}"
    PREFIX "lib"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(P_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${P_OUTPUT_DIRECTORY}")
  endif()
  target_link_options(${target} PRIVATE
    "LINKER:--version-script=${CMAKE_CURRENT_FUNCTION_LIST_DIR}/dfm_plugin.map" "LINKER:--no-undefined")
endfunction()
