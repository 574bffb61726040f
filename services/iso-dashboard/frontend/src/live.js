export function initLive(){}
