/* A Goertzel scan is enough here: the far end sends one pure tone, so we only
 * need the frequency that holds most of the energy. Two stages keep it cheap
 * and exact: a coarse 5 Hz scan over 0.1 s (main lobe +-10 Hz, so the true
 * peak cannot hide between steps), then a 0.25 Hz scan of +-5 Hz around the
 * winner over the whole window (main lobe +-2 Hz at 0.5 s). */
#include "refclient_tone.h"

#include <math.h>

#define TONE_MIN_HZ 100.0
#define TONE_MAX_HZ 4000.0
#define TONE_COARSE_STEP 5.0
#define TONE_COARSE_SECONDS 0.1
#define TONE_FINE_SPAN 5.0
#define TONE_FINE_STEP 0.25
#define TONE_SILENCE_POWER 1e-6 /* mean square below this (-60 dBFS) is silence */
#define TONE_MIN_PURITY 0.25    /* share of energy the peak must hold */

void refclient__tone_set(struct refclient_tone *t, double hz, double rate)
{
    t->step = 2.0 * M_PI * hz / rate;
}

void refclient__tone_fill(struct refclient_tone *t, float *out, size_t n, float amp)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = amp * (float)sin(t->phase);
        t->phase += t->step;
        if (t->phase >= 2.0 * M_PI)
            t->phase -= 2.0 * M_PI;
    }
}

/* |X(f)|^2 of x at a frequency that need not be a DFT bin. */
static double tone__goertzel(const float *x, size_t n, double hz, double rate)
{
    double coeff = 2.0 * cos(2.0 * M_PI * hz / rate);
    double s1 = 0.0, s2 = 0.0;

    for (size_t i = 0; i < n; i++) {
        double s = x[i] + coeff * s1 - s2;

        s2 = s1;
        s1 = s;
    }
    return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

static double tone__best(const float *x, size_t n, double rate, double lo, double hi,
                         double step, double *power)
{
    double best_hz = lo, best = -1.0;

    for (double hz = lo; hz <= hi + step / 2; hz += step) {
        double p = tone__goertzel(x, n, hz, rate);

        if (p > best) {
            best = p;
            best_hz = hz;
        }
    }
    *power = best;
    return best_hz;
}

double refclient__tone_detect(const float *pcm, size_t n, double rate)
{
    size_t coarse_n = (size_t)(rate * TONE_COARSE_SECONDS);
    double energy = 0.0, power, hz, lo, hi;

    if (n == 0 || rate <= 0.0)
        return 0.0;
    for (size_t i = 0; i < n; i++)
        energy += (double)pcm[i] * pcm[i];
    if (energy / (double)n < TONE_SILENCE_POWER)
        return 0.0;
    if (coarse_n > n)
        coarse_n = n;
    hz = tone__best(pcm + (n - coarse_n), coarse_n, rate, TONE_MIN_HZ, TONE_MAX_HZ,
                    TONE_COARSE_STEP, &power);
    lo = fmax(TONE_MIN_HZ, hz - TONE_FINE_SPAN);
    hi = fmin(TONE_MAX_HZ, hz + TONE_FINE_SPAN);
    hz = tone__best(pcm, n, rate, lo, hi, TONE_FINE_STEP, &power);
    /* For a pure sine |X|^2 = (A*n/2)^2 and energy = n*A^2/2, so this is 1. */
    if (2.0 * power / ((double)n * energy) < TONE_MIN_PURITY)
        return 0.0;
    return hz;
}
