#version 450
// Cosine similarity along the last axis; see reduce_cosine.glsl.
#include "reduce_cosine.glsl"
