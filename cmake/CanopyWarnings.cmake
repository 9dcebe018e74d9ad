# Warnings every Canopy target compiles with (STYLE.md, "Build"). Third-party
# headers come in as SYSTEM includes through their imported targets, so they do
# not trip these.
set(CANOPY_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Wimplicit-fallthrough -Wformat=2)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND CANOPY_WARNINGS -Wthread-safety)
endif()
if(CANOPY_WERROR)
  list(APPEND CANOPY_WARNINGS -Werror)
endif()

# canopy_target_defaults(<target>): warnings and include root for a Canopy target.
function(canopy_target_defaults target)
  target_compile_options(${target} PRIVATE ${CANOPY_WARNINGS})
endfunction()
