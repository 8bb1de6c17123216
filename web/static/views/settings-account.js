// Settings sections about the account: password and sessions.

/** accountSections: see settings.js for a section's shape. */
export const accountSections = [];
