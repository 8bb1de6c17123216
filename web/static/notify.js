// Desktop notifications (asked for only from a click) and the tab title.

const supported = typeof window.Notification === 'function';

/** notificationState is 'unsupported', 'default', 'granted' or 'denied'. */
export function notificationState() {
  return supported ? Notification.permission : 'unsupported';
}

/** askPermission must be called from a user gesture, such as a button click. */
export async function askPermission() {
  if (!supported) return 'unsupported';
  try {
    return await Notification.requestPermission();
  } catch {
    return Notification.permission;
  }
}

const desktopKey = 'mapsim.desktopNotifications';

/** desktopEnabled reports whether this browser should show desktop notifications (on unless turned off in Settings). */
export function desktopEnabled() {
  try { return localStorage.getItem(desktopKey) !== 'off'; } catch { return true; }
}

/** setDesktopEnabled turns this browser's desktop notifications on or off, and remembers it. */
export function setDesktopEnabled(on) {
  try { localStorage.setItem(desktopKey, on ? 'on' : 'off'); } catch { /* memory only */ }
}

/** notify shows a desktop notification when the tab is hidden, permission was given and they are on. */
export function notify(title, body, tag, onClick) {
  if (!supported || Notification.permission !== 'granted' || document.visibilityState === 'visible' || !desktopEnabled()) return;
  try {
    const n = new Notification(title, { body, tag, silent: false });
    n.onclick = () => {
      window.focus();
      onClick?.();
      n.close();
    };
  } catch {
    // Some platforms allow notifications only from a service worker.
  }
}

/** setUnreadTitle shows the unread total in the tab title. */
export function setUnreadTitle(total) {
  document.title = total > 0 ? `(${total}) Mapsim Chat` : 'Mapsim Chat';
}
