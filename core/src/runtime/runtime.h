/* runtime/runtime.h — the top layer: the phase state machine, init, flush, shutdown, fork, the resolved view.
 * It calls every layer below; none calls it (they get what they need through polytel__hooks). */
#ifndef POLYTEL_RUNTIME_H
#define POLYTEL_RUNTIME_H

#include "common/common.h"
#include "export/export.h"
#include "record/record.h"
#include "transport/transport.h"

/* The configuration in force (NULL before phase 1), for the bindings' C shims. */
const polytel__cfg_t *polytel__current_cfg(void);

#endif
