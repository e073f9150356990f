// ijg16.c: libjpeg decoder bound to GDCM's 16-bit IJG build (libgdcmjpeg16).
#include <stdio.h>
#include <gdcm-3.0/gdcmjpeg/16/jpeglib.h>
#include <gdcm-3.0/gdcmjpeg/16/jerror.h>
#define IJG_FN(name) radflow_ijg16_##name
#include "ijg_impl.h"
