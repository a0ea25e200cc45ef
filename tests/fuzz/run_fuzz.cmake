# Runs one fuzz target for SECONDS seconds over its corpus; new inputs and any
# crashing input (crash-*, the reproducer) go to WORK.
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${BINARY} -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10
                        -artifact_prefix=${WORK}/ ${WORK} ${CORPUS}
                RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "${BINARY} failed (exit ${failed}); a crash-* file in ${WORK} reproduces it")
endif()
