# cmake --install: the daemon, the `npystream` tool, the C++ client library
# with its headers and a CMake package (find_package(npystream) then
# target_link_libraries(app npystream::client)), and a systemd unit.
# cpack -G DEB packs the same files into a .deb that depends on Debian's
# runtime packages.
include(GNUInstallDirs)
# `make build` comes first; installing (and cpack) must not build every test.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
include(CMakePackageConfigHelpers)

set(NPYSTREAM_VERSION 0.5.0)
install(TARGETS npystreamd npystream RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS npystream_client npystream_proto npystream_base EXPORT npystreamTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
# Headers under include/npystream/, laid out as the sources include them.
install(FILES ${PROJECT_SOURCE_DIR}/client/cpp/npystream_client.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/npystream/client/cpp)
install(FILES ${PROJECT_SOURCE_DIR}/base/process_tuning.h ${PROJECT_SOURCE_DIR}/base/file_util.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/npystream/base)
install(FILES ${PROJECT_SOURCE_DIR}/proto/wire/wire_format.h ${PROJECT_SOURCE_DIR}/proto/wire/channel_args.h
  ${PROJECT_SOURCE_DIR}/proto/wire/socket_fetch.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/npystream/proto/wire)
install(DIRECTORY ${NPYSTREAM_PROTO_GEN_DIR}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/npystream
  FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/proto/npystream ${PROJECT_SOURCE_DIR}/proto/inference
  DESTINATION ${CMAKE_INSTALL_DATADIR}/npystream/proto FILES_MATCHING PATTERN "*.proto")
install(EXPORT npystreamTargets NAMESPACE npystream::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/npystream)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/npystreamConfig.cmake.in
  ${CMAKE_BINARY_DIR}/npystreamConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/npystream)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/npystreamConfigVersion.cmake
  VERSION ${NPYSTREAM_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/npystreamConfig.cmake ${CMAKE_BINARY_DIR}/npystreamConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/npystream)

# systemd: hardened unit, config from /etc/npystream/npystreamd.json.
configure_file(${PROJECT_SOURCE_DIR}/deploy/systemd/npystreamd.service.in
  ${CMAKE_BINARY_DIR}/npystreamd.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/npystreamd.service DESTINATION lib/systemd/system)
# /etc for a /usr install (the .deb), else under the prefix.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(NPYSTREAM_CONFIG_DIR /etc/npystream)
else()
  set(NPYSTREAM_CONFIG_DIR ${CMAKE_INSTALL_SYSCONFDIR}/npystream)
endif()
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/npystreamd.json
  DESTINATION ${NPYSTREAM_CONFIG_DIR})

# .deb (cpack -G DEB): shared-library dependencies computed by dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME npystream)
set(CPACK_PACKAGE_VERSION ${NPYSTREAM_VERSION})
set(CPACK_PACKAGE_CONTACT "npystream developers <npystream@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "npystreamd: PyTorch tensors resident on the server, streamed as NumPy .npy over gRPC")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Not a shared library npystreamd names itself: Debian's LibTorch calls any
# libblas.so.3, and without OpenBLAS that is the reference BLAS (several
# times slower Linear layers; see scripts/deps.sh). dpkg-shlibdeps adds the rest.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libopenblas0-serial")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/systemd/conffiles)
include(CPack)
