package httpapi

import "strings"

// deviceOf names the browser and the operating system a User-Agent header
// claims, for the list of sessions ("" for either it does not name). It
// reads only the well-known tokens, in the order that tells them apart:
// Edge and Opera also say Chrome, Chrome also says Safari, and every
// Android says Linux. The header is the client's own claim, shown to help
// a user recognise a session, never trusted for anything.
func deviceOf(ua string) (browser, os string) {
	has := func(s string) bool { return strings.Contains(ua, s) }
	switch {
	case has("Edg/"), has("Edge/"):
		browser = "Edge"
	case has("OPR/"), has("Opera"):
		browser = "Opera"
	case has("SamsungBrowser/"):
		browser = "Samsung Internet"
	case has("Firefox/"), has("FxiOS/"):
		browser = "Firefox"
	case has("Chromium/"):
		browser = "Chromium"
	case has("Chrome/"), has("CriOS/"):
		browser = "Chrome"
	case has("Safari/") && has("Version/"):
		browser = "Safari"
	case has("curl/"):
		browser = "curl"
	}
	switch {
	case has("iPhone"), has("iPad"), has("iPod"):
		os = "iOS"
	case has("Android"):
		os = "Android"
	case has("CrOS"):
		os = "ChromeOS"
	case has("Windows"):
		os = "Windows"
	case has("Mac OS X"), has("Macintosh"):
		os = "macOS"
	case has("Linux"), has("X11"):
		os = "Linux"
	}
	return browser, os
}
