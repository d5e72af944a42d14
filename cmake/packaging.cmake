# Install layout and Debian packages (CPack DEB), one package per component:
#
#   quietroom-relay   /usr/sbin/quietroom-relay, /etc/quietroom/relay.conf (conffile),
#                     quietroom-relay.service, sysctl.d (socket buffer ceiling),
#                     quietroom-relay(8)
#   quietroom-signal  /usr/sbin/quietroom-signal, /usr/share/quietroom/web/ (browser client and
#                     operator dashboard), /etc/quietroom/signal.ini (conffile),
#                     quietroom-signal.service, quietroom-signal(8)
#   quietroomctl      /usr/bin/quietroomctl, quietroom-probe.service/.timer,
#                     /etc/default/quietroom-probe (conffile), quietroomctl(8)
#
# Depends are computed by dpkg-shlibdeps from the binaries. Build them with the
# /usr prefix, so that the compiled-in defaults (static-dir) match the packages:
#
#   cmake -S . -B build-deb -G Ninja -DCMAKE_INSTALL_PREFIX=/usr -DQR_BUILD_TESTS=OFF
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
#
# deploy/validate.sh does this and installs the result with apt.

set(QR_DEPLOY_DIR ${PROJECT_SOURCE_DIR}/deploy)
set(QR_UNIT_DIR /lib/systemd/system)      # Debian 12's systemd unit directory
set(QR_CONF_DIR /etc/quietroom)

# --- install rules, by component -------------------------------------------
# The daemons' own CMakeLists install them without a component; these rules
# put them in their packages (the "Unspecified" component is not packaged).

install(TARGETS quietroom-relay RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT relay)
install(FILES ${QR_DEPLOY_DIR}/etc/relay.conf DESTINATION ${QR_CONF_DIR} COMPONENT relay)
install(FILES ${QR_DEPLOY_DIR}/systemd/quietroom-relay.service
        DESTINATION ${QR_UNIT_DIR} COMPONENT relay)
install(FILES ${QR_DEPLOY_DIR}/systemd/sysusers.d/quietroom.conf
        DESTINATION /usr/lib/sysusers.d RENAME quietroom-relay.conf COMPONENT relay)
install(FILES ${QR_DEPLOY_DIR}/systemd/sysctl.d/60-quietroom-relay.conf
        DESTINATION /usr/lib/sysctl.d COMPONENT relay)
install(FILES docs/relay.md docs/operations.md docs/audit.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/quietroom-relay COMPONENT relay)

install(TARGETS quietroom-signal RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT signal)
install(DIRECTORY signaling/web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/quietroom/web
        COMPONENT signal)
# The operator dashboard (/dashboard on ops-listen) serves these.
install(DIRECTORY signaling/ops-web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/quietroom/ops-web
        COMPONENT signal)
install(FILES ${QR_DEPLOY_DIR}/etc/signal.ini DESTINATION ${QR_CONF_DIR} COMPONENT signal)
install(FILES ${QR_DEPLOY_DIR}/systemd/quietroom-signal.service
        DESTINATION ${QR_UNIT_DIR} COMPONENT signal)
install(FILES ${QR_DEPLOY_DIR}/systemd/sysusers.d/quietroom.conf
        DESTINATION /usr/lib/sysusers.d RENAME quietroom-signal.conf COMPONENT signal)
install(FILES docs/protocol.md docs/operations.md docs/audit.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/quietroom-signal COMPONENT signal)

install(TARGETS quietroomctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT ctl)
install(FILES ${QR_DEPLOY_DIR}/systemd/quietroom-probe.service
              ${QR_DEPLOY_DIR}/systemd/quietroom-probe.timer
        DESTINATION ${QR_UNIT_DIR} COMPONENT ctl)
install(FILES ${QR_DEPLOY_DIR}/etc/quietroom-probe.default
        DESTINATION /etc/default RENAME quietroom-probe COMPONENT ctl)
install(FILES ${QR_DEPLOY_DIR}/systemd/sysusers.d/quietroom.conf
        DESTINATION /usr/lib/sysusers.d RENAME quietroomctl.conf COMPONENT ctl)
install(FILES docs/operations.md docs/audit.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/quietroomctl COMPONENT ctl)

# --- man pages (docs/man/), gzipped as Debian policy 12.1 asks ----------------
# gzip -9n: no name or time stamp in the header, so the .gz is reproducible.

find_program(QR_GZIP gzip)
foreach(pair quietroom-relay:relay quietroom-signal:signal quietroomctl:ctl)
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 page)
  list(GET pair 1 comp)
  set(src ${PROJECT_SOURCE_DIR}/docs/man/${page}.8)
  if(QR_GZIP)
    set(out ${PROJECT_BINARY_DIR}/man/${page}.8)
    add_custom_command(OUTPUT ${out}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
      COMMAND ${CMAKE_COMMAND} -E copy ${src} ${out}
      COMMAND ${QR_GZIP} -9nf ${out}
      DEPENDS ${src} VERBATIM)
    list(APPEND QR_MAN_GZ ${out}.gz)
    install(FILES ${out}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT ${comp})
  else()
    install(FILES ${src} DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT ${comp})
  endif()
endforeach()
if(QR_GZIP)
  add_custom_target(qr_man_pages ALL DEPENDS ${QR_MAN_GZ})
endif()

# --- maintainer scripts and conffiles, per package -------------------------

# qr__debian_control(COMPONENT PACKAGE CONFFILES UNITS SYSCTL): writes the
# control files of one package and returns their list in QR_CONTROL_<COMP>.
function(qr__debian_control comp pkg conffiles units sysctl)
  set(dir ${PROJECT_BINARY_DIR}/debian/${pkg})
  set(QR_PKG ${pkg})
  string(REPLACE ";" " " QR_UNITS "${units}")   # a shell word list in prerm
  set(QR_SYSUSERS /usr/lib/sysusers.d/${pkg}.conf)
  set(QR_SYSCTL "${sysctl}")
  foreach(script postinst prerm postrm)
    configure_file(${QR_DEPLOY_DIR}/debian/${script}.in ${dir}/${script} @ONLY
                   FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                                    GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endforeach()
  string(REPLACE ";" "\n" lines "${conffiles}")
  file(WRITE ${dir}/conffiles "${lines}\n")
  set(QR_CONTROL_${comp} ${dir}/conffiles ${dir}/postinst ${dir}/prerm ${dir}/postrm
      PARENT_SCOPE)
endfunction()

qr__debian_control(RELAY quietroom-relay "${QR_CONF_DIR}/relay.conf"
                   "quietroom-relay.service" /usr/lib/sysctl.d/60-quietroom-relay.conf)
qr__debian_control(SIGNAL quietroom-signal "${QR_CONF_DIR}/signal.ini"
                   "quietroom-signal.service" "")
qr__debian_control(CTL quietroomctl "/etc/default/quietroom-probe"
                   "quietroom-probe.timer;quietroom-probe.service" "")

# --- CPack -----------------------------------------------------------------

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME quietroom)
set(CPACK_PACKAGE_VENDOR "Quietroom")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Quietroom maintainers <maintainers@quietroom.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# Each package's description below starts with its own synopsis line; a
# summary equal to CPack's default is the only way to keep CPackDeb from
# prepending the project's summary to all three.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CMAKE_PROJECT_NAME} built using CMake")
set(CPACK_COMPONENTS_ALL relay signal ctl)
set(CPACK_DEB_COMPONENT_INSTALL ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

set(CPACK_DEBIAN_RELAY_PACKAGE_NAME quietroom-relay)
set(CPACK_DEBIAN_RELAY_PACKAGE_RECOMMENDS quietroomctl)
set(CPACK_DEBIAN_RELAY_PACKAGE_SUGGESTS prometheus)
set(CPACK_DEBIAN_RELAY_PACKAGE_CONTROL_EXTRA "${QR_CONTROL_RELAY}")
set(CPACK_DEBIAN_RELAY_DESCRIPTION
    "Quietroom media relay for telehealth video visits\n\
quietroom-relay forwards end-to-end-encrypted WebRTC media (DTLS-SRTP) between\n\
browsers on one UDP port as an ICE-lite agent, without ever holding a media key.\n\
It exposes Prometheus metrics, health and readiness endpoints, drains on\n\
SIGTERM and reloads its secrets on SIGHUP.")

set(CPACK_DEBIAN_SIGNAL_PACKAGE_NAME quietroom-signal)
set(CPACK_DEBIAN_SIGNAL_PACKAGE_RECOMMENDS quietroomctl)
set(CPACK_DEBIAN_SIGNAL_PACKAGE_CONTROL_EXTRA "${QR_CONTROL_SIGNAL}")
set(CPACK_DEBIAN_SIGNAL_DESCRIPTION
    "Quietroom signaling server and browser client\n\
quietroom-signal serves the Quietroom web client over HTTPS and WebSockets,\n\
checks EHR-signed visit tokens, runs the waiting room, pairs participants and\n\
rewrites their SDP so that media flows through a Quietroom relay.")

set(CPACK_DEBIAN_CTL_PACKAGE_NAME quietroomctl)
set(CPACK_DEBIAN_CTL_PACKAGE_CONTROL_EXTRA "${QR_CONTROL_CTL}")
set(CPACK_DEBIAN_CTL_DESCRIPTION
    "Quietroom administration tool and synthetic call prober\n\
quietroomctl creates relay secrets and keys, reads relay statistics, revokes\n\
sessions, verifies and exports audit logs, and places synthetic end-to-end\n\
encrypted calls (quietroom-probe.timer) for monitoring.")

include(CPack)
