/* transport_none.c — the "none" exporter: every request completes as delivered, without I/O (record and
 * count only), on the libuv loop driver. */
#include "transport_uv.h"

static void none_send(polytel__uv_t *tp, polytel__request_t *req) {
  polytel__uv_done_status(tp, req, 200, NULL);
}

static const polytel__sender_t g_none = {NULL, NULL, none_send, NULL, NULL, NULL, NULL};

static int none_start(uv_loop_t *loop, polytel__pipeline_t *pl, const polytel__pipeline_api_t *api,
                      const polytel__cfg_t *cfg) {
  return polytel__uv_start(loop, pl, api, cfg, &g_none);
}

const polytel__transport_t polytel__transport_none = {"none",
                                                      none_start,
                                                      polytel__uv_wake,
                                                      polytel__uv_flush,
                                                      polytel__uv_stop,
                                                      polytel__uv_atfork_prepare,
                                                      polytel__uv_atfork_parent,
                                                      polytel__uv_atfork_child};
