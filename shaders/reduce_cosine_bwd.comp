#version 450
// Backward of the cosine similarity; see reduce_cosine.glsl.
#define BACKWARD
#include "reduce_cosine.glsl"
