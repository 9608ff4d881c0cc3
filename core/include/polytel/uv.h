/* polytel/uv.h — phase-2 users include this beside polytel.h to pass their uv_loop_t. */
#ifndef POLYTEL_UV_H
#define POLYTEL_UV_H
#include <uv.h>

#include "../polytel.h"

/* polytel_init_full_telemetry(loop, cfg) takes a uv_loop_t *: struct uv_loop_s is uv_loop_t. */
#endif
