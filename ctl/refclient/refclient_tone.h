/* Sine generator and dominant-frequency detector. Pure functions on caller
 * buffers, so the test can check them without a network. */
#ifndef QR_REFCLIENT_TONE_H
#define QR_REFCLIENT_TONE_H

#include <stddef.h>

struct refclient_tone {
    double phase; /* radians, kept in [0, 2*pi) so long runs do not lose precision */
    double step;  /* radians per sample */
};

/* Sets the frequency; the phase carries over so a change does not click. */
void refclient__tone_set(struct refclient_tone *t, double hz, double rate);
/* Writes n samples of amplitude amp. */
void refclient__tone_fill(struct refclient_tone *t, float *out, size_t n, float amp);
/* Dominant frequency in 100..4000 Hz of pcm, to about 0.25 Hz; 0 for silence
 * or when no single tone carries most of the energy. */
double refclient__tone_detect(const float *pcm, size_t n, double rate);

#endif
