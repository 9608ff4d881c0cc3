/* transport_none.c — the "none" exporter: every request completes as delivered, without I/O (record and
 * count only), on the libuv loop driver. */
#include "transport/uv.h"

static void none_send(polytel__uv_t *tp, polytel__request_t *req) {
  polytel__uv_done_status(tp, req, 200, NULL);
}

static const polytel__sender_t g_none = {NULL, NULL, none_send, NULL, NULL, NULL, NULL};

const polytel__transport_t polytel__transport_none = POLYTEL__UV_TRANSPORT("none", &g_none);
