# Runs one fuzz target for SECONDS seconds over its corpus; new inputs go to WORK.
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${BINARY} -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10 ${WORK} ${CORPUS}
                RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "${BINARY} found a crashing input (crash-* in the working folder); exit ${failed}")
endif()
