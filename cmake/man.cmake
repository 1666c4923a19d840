# Manual pages made from the programs' own --help by help2man, so they
# cannot drift from it: ternd.8, and tern.1 with every subcommand's help
# (cmake/man-commands.sh). Built and installed when help2man is found
# (scripts/install-deps.sh installs it; the container image goes without).
include(GNUInstallDirs)
find_program(HELP2MAN help2man)
if(HELP2MAN AND TARGET ternd AND TARGET tern_cli)
  set(TERN_MAN_DIR ${CMAKE_BINARY_DIR}/man)
  add_custom_command(OUTPUT ${TERN_MAN_DIR}/ternd.8
    COMMAND ${CMAKE_COMMAND} -E make_directory ${TERN_MAN_DIR}
    COMMAND ${HELP2MAN} --no-info --section 8
            --name "the tern publish/subscribe broker"
            --include ${CMAKE_CURRENT_LIST_DIR}/ternd.h2m
            --output ${TERN_MAN_DIR}/ternd.8 $<TARGET_FILE:ternd>
    DEPENDS ternd ${CMAKE_CURRENT_LIST_DIR}/ternd.h2m
    VERBATIM)
  add_custom_command(OUTPUT ${TERN_MAN_DIR}/tern.1
    COMMAND ${CMAKE_COMMAND} -E make_directory ${TERN_MAN_DIR}
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/man-commands.sh
            $<TARGET_FILE:tern_cli> ${TERN_MAN_DIR}/tern-commands.h2m
    COMMAND ${HELP2MAN} --no-info --section 1
            --name "command-line client of the tern broker"
            --include ${TERN_MAN_DIR}/tern-commands.h2m
            --output ${TERN_MAN_DIR}/tern.1 $<TARGET_FILE:tern_cli>
    DEPENDS tern_cli ${CMAKE_CURRENT_LIST_DIR}/man-commands.sh
    VERBATIM)
  add_custom_target(man ALL
    DEPENDS ${TERN_MAN_DIR}/ternd.8 ${TERN_MAN_DIR}/tern.1)
  install(FILES ${TERN_MAN_DIR}/ternd.8
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
  install(FILES ${TERN_MAN_DIR}/tern.1
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "help2man not found: no manual pages "
                 "(scripts/install-deps.sh installs it)")
endif()
