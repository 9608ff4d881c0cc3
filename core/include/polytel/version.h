/* polytel/version.h — the version, rendered from project(VERSION) in the root CMakeLists.txt by core/CMakeLists.txt.
 * Checked in, so builds without CMake (bindings, fuzzers) compile it as is; do not edit (docs/building.md). */
#ifndef POLYTEL_VERSION_H
#define POLYTEL_VERSION_H
#define POLYTEL_VERSION_MAJOR 0
#define POLYTEL_VERSION_MINOR 1
#define POLYTEL_VERSION_PATCH 0
#define POLYTEL_VERSION_STRING "0.1.0"
#define POLYTEL_VERSION_HEX ((POLYTEL_VERSION_MAJOR << 16) | (POLYTEL_VERSION_MINOR << 8) | POLYTEL_VERSION_PATCH)
#endif
