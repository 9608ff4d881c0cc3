/* hooks.c — the runtime's hooks for the layers below (common.h): filled by runtime/phase.c at load. */
#include "common/common.h"

polytel__hooks_t polytel__hooks;
