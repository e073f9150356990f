// ijg8.c: libjpeg decoder bound to GDCM's 8-bit IJG build (libgdcmjpeg8).
#include <stdio.h>
#include <gdcm-3.0/gdcmjpeg/8/jpeglib.h>
#include <gdcm-3.0/gdcmjpeg/8/jerror.h>
#define IJG_FN(name) radflow_ijg8_##name
#include "ijg_impl.h"
