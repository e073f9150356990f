// ijg12.c: libjpeg decoder bound to GDCM's 12-bit IJG build (libgdcmjpeg12).
#include <stdio.h>
#include <gdcm-3.0/gdcmjpeg/12/jpeglib.h>
#include <gdcm-3.0/gdcmjpeg/12/jerror.h>
#define IJG_FN(name) radflow_ijg12_##name
#include "ijg_impl.h"
