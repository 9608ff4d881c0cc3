/* export/export.h — the export layer, I/O-free: the OTLP encoders (protobuf, JSON) and body compression, the
 * collector's answers (partial_success), the pipeline (batches, retry and drop policy, accounting). */
#ifndef POLYTEL_EXPORT_H
#define POLYTEL_EXPORT_H

#include "export/encode.h"
#include "export/pipeline.h"
#include "export/response.h"

#endif
