// Shared by the one-dimensional elementwise shaders: 256 invocations per
// workgroup on a 2-D grid, so that more than 65535*256 elements can be
// covered in one dispatch (see kernels.grid1D).
#define WG 256
layout(local_size_x = WG) in;

uint linearIndex() {
	return gl_GlobalInvocationID.x + gl_WorkGroupID.y * (gl_NumWorkGroups.x * WG);
}
