// MuJoCo actuator plugin "robot_rl.actuator_net": the stage-2 actuator network evaluated
// inside the physics step, so that a simulator steps the network with its physics in one
// compiled loop (mujoco.rollout threads) instead of returning to Python every physics step.
//
// It computes exactly what actuator_net/runtime.py (NumpyActuatorNet) computes, in float32:
// per actuator, the inputs are position error and velocity at L history lags (lag m sits
// lag_lo[m] + lag_frac[m] physics steps back, interpolated linearly): with reference = 1
// each lag's target (ctrl) against the joint's position now, with 0 each lag's own
// error (ctrl - q); through
// the MLP (scaling folded into the first and last layers, softsign between layers) plus a
// linear term on the same inputs (its offset folded into the last bias); the output is the
// joint torque (N m), clamped by the actuator's forcerange.
//
// One instance drives all the actuators that name it (in actuator id order); each may use
// its own weight set (net_of). The past samples live in the plugin state (so they are part
// of mjSTATE_FULLPHYSICS and travel with a saved state); state[0] = 1 marks a fresh episode,
// whose history is then filled with the first step's sample (a robot at rest).
// compute() reads the state and keeps this step's sample; advance() pushes it.
//
// Configuration (strings, written by actuator_net/mujoco_plugin.py):
//   actuators  number of actuators using the instance
//   history    past samples kept (buffer length - 1)
//   lag_lo     L integers; lag_frac: L floats (all 0: no interpolation)
//   layers     widths, input first: 2L h1 ... 1
//   nets       number of weight sets; net_of: weight set of each actuator
//   weights    per set, per layer: W (in x out, row-major) then b (out)
//   linear     per set, 2L weights of the linear term (optional: absent means none)
//   reference  1: past targets against the position now (the history keeps targets);
//              0 or absent: each lag's own error (the history keeps errors)

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mujoco/mujoco.h>

#define MAX_LAYERS 16
#define NA 4  // actuators evaluated together (one weight set)
#define PLUGIN_NAME "robot_rl.actuator_net"

static const char* kAttributes[] = {"actuators", "history", "lag_lo", "lag_frac", "layers",
                                    "nets", "net_of", "weights", "linear", "reference"};

typedef struct {
  int nact, nhist, nlag, nlayer, nnet, stride, widest;
  int now;  // 1: past targets against the position now
  int size[MAX_LAYERS + 1];
  int* act;        // actuator ids
  int* qadr;       // qpos address of each actuator's joint
  int* vadr;       // qvel address
  int* net_of;     // weight set of each actuator
  int* lag_lo;
  float* lag_frac;
  float* weights;  // nnet * stride floats
  float* linear;   // nnet * size[0] floats: the linear term's weights
  float* lin_out;  // this step's linear term per actuator
  float* stash;    // this step's (e, v) per actuator
  float* work;     // 2 buffers of nact * widest
  float* scratch;  // widest: outputs of a short actuator group's padding
  int ngroup;
  int* order;        // actuators sorted by weight set
  int* group_start;  // ngroup + 1 offsets into order: groups of <= NA with one weight set
} Net;

// ---- configuration parsing ----------------------------------------------------------------

static const char* config(const mjModel* m, int instance, const char* name) {
  const char* s = mj_getPluginConfig(m, instance, name);
  return s ? s : "";
}

// parse up to n numbers from s; returns how many were read (-1 if more than n)
static int parse_numbers(const char* s, double* out, int n) {
  int count = 0;
  char* end;
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',') s++;
    if (*s == '\0') return count;
    double v = strtod(s, &end);
    if (end == s) return -2;  // not a number
    if (count == n) return -1;
    out[count++] = v;
    s = end;
  }
}

static int config_int(const mjModel* m, int instance, const char* name, int* out) {
  double v = 0;
  if (parse_numbers(config(m, instance, name), &v, 1) != 1 || v != (int)v) {
    mju_warning("%s: attribute '%s' must be one integer", PLUGIN_NAME, name);
    return -1;
  }
  *out = (int)v;
  return 0;
}

// exactly n numbers of attribute name into out (doubles, caller converts)
static double* config_array(const mjModel* m, int instance, const char* name, int n) {
  double* buf = (double*)malloc(sizeof(double) * (n > 0 ? n : 1));
  if (!buf) return NULL;
  int got = parse_numbers(config(m, instance, name), buf, n);
  if (got != n) {
    mju_warning("%s: attribute '%s' must hold %d numbers", PLUGIN_NAME, name, n);
    free(buf);
    return NULL;
  }
  return buf;
}

static int nstate(const mjModel* m, int instance) {
  int nact = 0, nhist = 0;
  if (config_int(m, instance, "actuators", &nact) || config_int(m, instance, "history", &nhist)) {
    return 1;
  }
  return 1 + 2 * nact * nhist;
}

static void net_free(Net* net) {
  if (!net) return;
  free(net->act);
  free(net->qadr);
  free(net->vadr);
  free(net->net_of);
  free(net->lag_lo);
  free(net->lag_frac);
  free(net->weights);
  free(net->linear);
  free(net->lin_out);
  free(net->stash);
  free(net->work);
  free(net->scratch);
  free(net->order);
  free(net->group_start);
  free(net);
}

static int net_alloc(Net* net) {
  int n = net->nact;
  net->act = (int*)calloc(n, sizeof(int));
  net->qadr = (int*)calloc(n, sizeof(int));
  net->vadr = (int*)calloc(n, sizeof(int));
  net->net_of = (int*)calloc(n, sizeof(int));
  net->lag_lo = (int*)calloc(net->nlag, sizeof(int));
  net->lag_frac = (float*)calloc(net->nlag, sizeof(float));
  net->weights = (float*)calloc((size_t)net->nnet * net->stride, sizeof(float));
  net->linear = (float*)calloc((size_t)net->nnet * net->size[0], sizeof(float));
  net->lin_out = (float*)calloc(n, sizeof(float));
  net->stash = (float*)calloc(2 * n, sizeof(float));
  net->work = (float*)calloc((size_t)2 * n * net->widest, sizeof(float));
  net->scratch = (float*)calloc(net->widest, sizeof(float));
  net->order = (int*)calloc(n, sizeof(int));
  net->group_start = (int*)calloc(n + 1, sizeof(int));
  return (net->order && net->group_start && net->act && net->qadr && net->vadr && net->net_of && net->lag_lo && net->lag_frac &&
          net->weights && net->linear && net->lin_out && net->stash && net->work &&
          net->scratch) ? 0 : -1;
}

static Net* net_create(const mjModel* m, int instance) {
  Net* net = (Net*)calloc(1, sizeof(Net));
  double *lo = NULL, *frac = NULL, *of = NULL, *w = NULL, *lin = NULL, sizes[MAX_LAYERS + 2];
  if (!net) return NULL;
  if (config_int(m, instance, "actuators", &net->nact) ||
      config_int(m, instance, "history", &net->nhist) ||
      config_int(m, instance, "nets", &net->nnet)) goto fail;
  if (*config(m, instance, "reference")) {  // optional: absent, each lag's own error
    if (config_int(m, instance, "reference", &net->now)) goto fail;
    if (net->now != 0 && net->now != 1) {
      mju_warning("%s: attribute 'reference' must be 0 or 1", PLUGIN_NAME);
      goto fail;
    }
  }
  int nsize = parse_numbers(config(m, instance, "layers"), sizes, MAX_LAYERS + 1);
  if (nsize < 2) {
    mju_warning("%s: attribute 'layers' must hold 2 to %d widths", PLUGIN_NAME, MAX_LAYERS + 1);
    goto fail;
  }
  net->nlayer = nsize - 1;
  net->stride = 0;
  net->widest = 0;
  for (int i = 0; i < nsize; i++) {
    net->size[i] = (int)sizes[i];
    if (net->size[i] < 1) {
      mju_warning("%s: layer widths must be >= 1", PLUGIN_NAME);
      goto fail;
    }
    if (net->size[i] > net->widest) net->widest = net->size[i];
    if (i > 0) net->stride += net->size[i - 1] * net->size[i] + net->size[i];
  }
  if (net->size[0] % 2 || net->size[nsize - 1] != 1 || net->nact < 1 || net->nnet < 1 ||
      net->nhist < 0) {
    mju_warning("%s: need an even input width (2 x lags), one output, actuators >= 1, "
                "nets >= 1, history >= 0", PLUGIN_NAME);
    goto fail;
  }
  net->nlag = net->size[0] / 2;
  if (net_alloc(net)) goto fail;

  lo = config_array(m, instance, "lag_lo", net->nlag);
  frac = config_array(m, instance, "lag_frac", net->nlag);
  of = config_array(m, instance, "net_of", net->nact);
  w = config_array(m, instance, "weights", net->nnet * net->stride);
  if (!lo || !frac || !of || !w) goto fail;
  if (*config(m, instance, "linear")) {  // optional: absent, the linear term is zero
    lin = config_array(m, instance, "linear", net->nnet * net->size[0]);
    if (!lin) goto fail;
    for (long i = 0; i < (long)net->nnet * net->size[0]; i++) net->linear[i] = (float)lin[i];
  }
  for (int i = 0; i < net->nlag; i++) {
    net->lag_lo[i] = (int)lo[i];
    net->lag_frac[i] = (float)frac[i];
  }
  for (int i = 0; i < net->nlag; i++) {
    int reach = net->lag_lo[i] + (net->lag_frac[i] != 0.0f ? 1 : 0);
    if (net->lag_lo[i] < 0 || reach > net->nhist) {
      mju_warning("%s: lag %d reaches %d steps back, beyond the %d kept", PLUGIN_NAME, i, reach,
                  net->nhist);
      goto fail;
    }
  }
  for (int i = 0; i < net->nact; i++) {
    net->net_of[i] = (int)of[i];
    if (net->net_of[i] < 0 || net->net_of[i] >= net->nnet) {
      mju_warning("%s: net_of[%d] = %d is not a weight set (0..%d)", PLUGIN_NAME, i,
                  net->net_of[i], net->nnet - 1);
      goto fail;
    }
  }
  for (long i = 0; i < (long)net->nnet * net->stride; i++) net->weights[i] = (float)w[i];
  int k = 0;
  net->ngroup = 0;
  for (int s = 0; s < net->nnet; s++) {  // groups: by weight set, then NA at a time
    int in_group = 0;
    for (int a = 0; a < net->nact; a++) {
      if (net->net_of[a] != s) continue;
      if (in_group == 0) net->group_start[net->ngroup++] = k;
      net->order[k++] = a;
      in_group = (in_group + 1) % NA;
    }
  }
  net->group_start[net->ngroup] = k;

  // the actuators that name this instance, in id order; each must drive a hinge or slide joint
  k = 0;
  for (int i = 0; i < m->nu; i++) {
    if (m->actuator_plugin[i] != instance) continue;
    if (k == net->nact) {
      mju_warning("%s: more actuators use the instance than 'actuators' = %d", PLUGIN_NAME,
                  net->nact);
      goto fail;
    }
    int jnt = m->actuator_trnid[2 * i];
    if (m->actuator_trntype[i] != mjTRN_JOINT ||
        (m->jnt_type[jnt] != mjJNT_HINGE && m->jnt_type[jnt] != mjJNT_SLIDE)) {
      mju_warning("%s: actuator %d must drive a hinge or slide joint", PLUGIN_NAME, i);
      goto fail;
    }
    net->act[k] = i;
    net->qadr[k] = m->jnt_qposadr[jnt];
    net->vadr[k] = m->jnt_dofadr[jnt];
    k++;
  }
  if (k != net->nact) {
    mju_warning("%s: %d actuators use the instance, 'actuators' says %d", PLUGIN_NAME, k,
                net->nact);
    goto fail;
  }
  free(lo);
  free(frac);
  free(of);
  free(w);
  free(lin);
  return net;

fail:
  free(lo);
  free(frac);
  free(of);
  free(w);
  free(lin);
  net_free(net);
  return NULL;
}

// ---- plugin callbacks ---------------------------------------------------------------------

static int init(const mjModel* m, mjData* d, int instance) {
  Net* net = net_create(m, instance);
  if (!net) return -1;
  d->plugin_data[instance] = (uintptr_t)net;
  return 0;
}

static void destroy(mjData* d, int instance) {
  net_free((Net*)d->plugin_data[instance]);
  d->plugin_data[instance] = 0;
}

static void copy(mjData* dest, const mjModel* m, const mjData* src, int instance) {
  (void)src;
  Net* net = net_create(m, instance);  // the weights come from the model; the stash is scratch
  if (!net) mju_error("%s: cannot copy the plugin data", PLUGIN_NAME);
  dest->plugin_data[instance] = (uintptr_t)net;
}

static void reset(const mjModel* m, mjtNum* plugin_state, void* plugin_data, int instance) {
  const Net* net = (const Net*)plugin_data;  // sizes already parsed by init
  mju_zero(plugin_state, net ? 1 + 2 * net->nact * net->nhist : nstate(m, instance));
  plugin_state[0] = 1;  // fresh episode: the history is filled with the first sample
}

// ---- the MLP ------------------------------------------------------------------------------
// Actuators of one weight set are evaluated NA at a time: each weight vector loaded is used
// NA times, and outputs in blocks of 32 stay in registers over the input loop (NA x 4
// independent accumulators of 8 floats keep the FMA units busy).  GCC/Clang vector types.

typedef float v8 __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

static inline v8 load8(const float* p) {
  v8 v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline float softsign(float v) { return v / (1.0f + fabsf(v)); }

// y = acc + b (8 outputs), softsign if hidden, vectorized (a scalar division per output
// would cost as much as the layer's FMAs)
static inline void finish8(float* y, v8 acc, const float* b, int hidden) {
  v8 v = acc + load8(b);
  if (hidden) {
    const v8i magnitude = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                           0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    v = v / (1.0f + (v8)((v8i)v & magnitude));
  }
  memcpy(y, &v, sizeof v);
}

// y[a] = x[a] W + b for NA actuators sharing W (nin x nout, row-major; b follows W),
// softsign if hidden
static void dense(const float* x[NA], const float* W, float* y[NA], int nin, int nout,
                  int hidden) {
  const float* b = W + (size_t)nin * nout;
  int o0 = 0;
  for (; o0 + 32 <= nout; o0 += 32) {
    v8 acc[NA][4];
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < nin; i++) {
      const float* w = W + (size_t)i * nout + o0;
      const v8 w0 = load8(w), w1 = load8(w + 8), w2 = load8(w + 16), w3 = load8(w + 24);
      for (int a = 0; a < NA; a++) {
        const v8 xi = (v8){0} + x[a][i];
        acc[a][0] += xi * w0;
        acc[a][1] += xi * w1;
        acc[a][2] += xi * w2;
        acc[a][3] += xi * w3;
      }
    }
    for (int a = 0; a < NA; a++) {
      for (int k = 0; k < 4; k++) finish8(y[a] + o0 + 8 * k, acc[a][k], b + o0 + 8 * k, hidden);
    }
  }
  for (; o0 + 8 <= nout; o0 += 8) {
    v8 acc[NA];
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < nin; i++) {
      const v8 w = load8(W + (size_t)i * nout + o0);
      for (int a = 0; a < NA; a++) acc[a] += ((v8){0} + x[a][i]) * w;
    }
    for (int a = 0; a < NA; a++) finish8(y[a] + o0, acc[a], b + o0, hidden);
  }
  for (; o0 < nout; o0++) {  // outputs left (the torque): dot products in 8 partial sums
    for (int a = 0; a < NA; a++) {
      v8 part = {0};
      float col[8];
      int i = 0;
      for (; i + 8 <= nin; i += 8) {
        for (int k = 0; k < 8; k++) col[k] = W[(size_t)(i + k) * nout + o0];
        part += load8(x[a] + i) * load8(col);
      }
      float v = 0.0f;
      for (; i < nin; i++) v += x[a][i] * W[(size_t)i * nout + o0];
      for (int k = 0; k < 8; k++) v += part[k];
      v += b[o0];
      y[a][o0] = hidden ? softsign(v) : v;
    }
  }
}

static void compute(const mjModel* m, mjData* d, int instance, int capability_bit) {
  (void)capability_bit;
  Net* net = (Net*)d->plugin_data[instance];
  const mjtNum* state = d->plugin_state + m->plugin_stateadr[instance];
  const int fresh = state[0] != 0, nact = net->nact, nhist = net->nhist, nlag = net->nlag;
  const mjtNum* hist_e = state + 1;
  const mjtNum* hist_v = hist_e + nact * nhist;
  float* x = net->work;
  float* y = net->work + nact * net->widest;

  // inputs (nact x 2L): position error at the lags, then velocity at the lags; the sample
  // kept is the target (reference 1) or the error
  for (int a = 0; a < nact; a++) {
    const float q = (float)d->qpos[net->qadr[a]];
    const mjtNum target = d->ctrl[net->act[a]];
    float e = net->now ? (float)target : (float)(target - d->qpos[net->qadr[a]]);
    float v = (float)d->qvel[net->vadr[a]];
    net->stash[2 * a] = e;
    net->stash[2 * a + 1] = v;
    const mjtNum* he = hist_e + a * nhist;
    const mjtNum* hv = hist_v + a * nhist;
    float* xa = x + a * net->size[0];
    for (int l = 0; l < nlag; l++) {
      int k = net->lag_lo[l];
      float e0 = (k == 0 || fresh) ? e : (float)he[k - 1];
      float v0 = (k == 0 || fresh) ? v : (float)hv[k - 1];
      if (net->lag_frac[l] != 0.0f) {  // between two samples: linear interpolation
        float e1 = fresh ? e : (float)he[k];
        float v1 = fresh ? v : (float)hv[k];
        e0 = e0 + (e1 - e0) * net->lag_frac[l];
        v0 = v0 + (v1 - v0) * net->lag_frac[l];
      }
      xa[l] = net->now ? e0 - q : e0;
      xa[nlag + l] = v0;
    }
    const float* lw = net->linear + (size_t)net->net_of[a] * net->size[0];
    float s = 0.0f;
    for (int i = 0; i < net->size[0]; i++) s += xa[i] * lw[i];
    net->lin_out[a] = s;
  }

  // the MLP, by groups of up to NA actuators with one weight set (a short group repeats
  // its last actuator, writing that copy to scratch)
  int offset = 0;
  for (int layer = 0; layer < net->nlayer; layer++) {
    const int nin = net->size[layer], nout = net->size[layer + 1];
    for (int g = 0; g < net->ngroup; g++) {
      const int* members = net->order + net->group_start[g];
      const int count = net->group_start[g + 1] - net->group_start[g];
      const float* xs[NA];
      float* ys[NA];
      for (int k = 0; k < NA; k++) {
        const int a = members[k < count ? k : count - 1];
        xs[k] = x + a * nin;
        ys[k] = k < count ? y + a * nout : net->scratch;
      }
      const float* W = net->weights + (size_t)net->net_of[members[0]] * net->stride + offset;
      dense(xs, W, ys, nin, nout, layer + 1 < net->nlayer);
    }
    offset += nin * nout + nout;
    float* t = x;
    x = y;
    y = t;
  }
  for (int a = 0; a < nact; a++) d->actuator_force[net->act[a]] = x[a] + net->lin_out[a];
}

static void advance(const mjModel* m, mjData* d, int instance) {
  Net* net = (Net*)d->plugin_data[instance];
  mjtNum* state = d->plugin_state + m->plugin_stateadr[instance];
  const int nact = net->nact, nhist = net->nhist, fresh = state[0] != 0;
  mjtNum* hist_e = state + 1;
  mjtNum* hist_v = hist_e + nact * nhist;
  for (int a = 0; a < nact && nhist > 0; a++) {
    mjtNum* he = hist_e + a * nhist;
    mjtNum* hv = hist_v + a * nhist;
    if (fresh) {
      for (int k = 0; k < nhist; k++) {
        he[k] = net->stash[2 * a];
        hv[k] = net->stash[2 * a + 1];
      }
    } else {
      memmove(he + 1, he, sizeof(mjtNum) * (nhist - 1));
      memmove(hv + 1, hv, sizeof(mjtNum) * (nhist - 1));
      he[0] = net->stash[2 * a];
      hv[0] = net->stash[2 * a + 1];
    }
  }
  state[0] = 0;
}

mjPLUGIN_LIB_INIT(robot_rl_actuator_net) {
  mjpPlugin plugin;
  mjp_defaultPlugin(&plugin);
  plugin.name = PLUGIN_NAME;
  plugin.capabilityflags |= mjPLUGIN_ACTUATOR;
  plugin.nattribute = sizeof(kAttributes) / sizeof(kAttributes[0]);
  plugin.attributes = kAttributes;
  plugin.nstate = nstate;
  plugin.init = init;
  plugin.destroy = destroy;
  plugin.copy = copy;
  plugin.reset = reset;
  plugin.compute = compute;
  plugin.advance = advance;
  mjp_registerPlugin(&plugin);
}
