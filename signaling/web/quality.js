/* The quality line in words people act on. Pure: QualityMeter's level (the
 * numbers' verdict) and what the page knows of its peers in, a level and a
 * catalogue key for one suggestion out. */

/* measured: 'unknown' | 'good' | 'fair' | 'poor' (QualityMeter.level);
 * reconnecting: some peer is interrupted (no heartbeat, ICE disconnected,
 * the server lost it): that outranks any measurement, whose last numbers
 * would still say good. sendingVideo: our camera is being sent (turning it
 * off is the suggestion that helps then); sharing: our screen is, and
 * stopping the share is what helps. */
export function qualityWords({ measured, reconnecting = false, sendingVideo = true, sharing = false }) {
    if (reconnecting) return { level: 'reconnecting', key: 'quality.reconnecting' };
    if (measured === 'good') return { level: 'good', key: 'quality.good' };
    if (measured === 'fair' || measured === 'poor') {
        const key = sharing ? 'quality.weakShare' : sendingVideo ? 'quality.weakCamera' : 'quality.weak';
        return { level: 'weak', key };
    }
    return { level: 'unknown', key: 'quality.checking' };
}
