# Must-not-compile check: SRC compiles with -DKVF_MNC_CONTROL (a valid composition, so a failure below is not a
# broken include) and fails without it, printing EXPECT (the static_assert sentence of compose/press.hpp).
#   cmake -DCXX=<compiler> -DINC=<source root> -DEXTRA_INC=<dir|dir...> -DSRC=<file> -DEXPECT=<fragment> -P check.cmake
# EXTRA_INC carries the include directories of the policies' dependencies (Eigen), '|'-separated.
set(flags -std=c++20 -fsyntax-only -I${INC})
if(EXTRA_INC)
  string(REPLACE "|" ";" extra "${EXTRA_INC}")
  foreach(dir IN LISTS extra)
    list(APPEND flags -I${dir})
  endforeach()
endif()
execute_process(COMMAND ${CXX} ${flags} -DKVF_MNC_CONTROL ${SRC} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the control composition of ${SRC} does not compile, so the check proves nothing:\n${err}")
endif()
execute_process(COMMAND ${CXX} ${flags} ${SRC} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SRC} compiled, but it must not")
endif()
string(FIND "${err}${out}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${SRC} failed to compile, but without the expected message '${EXPECT}':\n${err}")
endif()
message(STATUS "${SRC}: rejected with '${EXPECT}'")
