// Activation functions of the act* shaders, on four elements at a time:
// ACT 0 = ReLU, 1 = gelu_new (the tanh approximation T5 v1.1 uses),
// 2 = SiLU. act returns f(x), actGrad returns f'(x).

layout(constant_id = 0) const int ACT = 0;

const float GELU_K0 = 0.7978845608028654; // sqrt(2/pi)
const float GELU_K1 = 0.044715;

// tanh that saturates to ±1 for large |u| instead of dividing inf by inf.
vec4 tanhSat(vec4 u) {
	vec4 e = exp(-2.0 * abs(u));
	return sign(u) * (1.0 - e) / (1.0 + e);
}

vec4 act(vec4 x) {
	if (ACT == 0) {
		return max(x, vec4(0.0));
	}
	if (ACT == 1) {
		vec4 t = tanhSat(GELU_K0 * (x + GELU_K1 * x * x * x));
		return 0.5 * x * (1.0 + t);
	}
	return x / (1.0 + exp(-x));
}

vec4 actGrad(vec4 x) {
	if (ACT == 0) {
		return vec4(greaterThan(x, vec4(0.0)));
	}
	if (ACT == 1) {
		vec4 t = tanhSat(GELU_K0 * (x + GELU_K1 * x * x * x));
		return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * x * x);
	}
	vec4 s = 1.0 / (1.0 + exp(-x));
	return s * (1.0 + x * (1.0 - s));
}
