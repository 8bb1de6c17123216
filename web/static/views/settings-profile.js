// Settings sections about me and this browser: profile, appearance and
// notifications.

/** profileSections: see settings.js for a section's shape. */
export const profileSections = [];
