import Formats

extension FormatError.Code {
    /// A hardware name is not in the catalog (the message lists the known names).
    public static let unknownHardware: Self = "unknownHardware"
    /// A model name is neither a path nor a preset (the message lists the presets).
    public static let unknownModel: Self = "unknownModel"
    /// A hardware catalog, preset table or config.json is missing a field or holds a bad value.
    public static let invalidCatalog: Self = "invalidCatalog"
    /// A config.json or GGUF metadata lacks a field the model shape needs, or holds a bad value.
    public static let invalidModelConfig: Self = "invalidModelConfig"
    /// A request to the planner is inconsistent (zero devices, a context longer than the model's, an unknown engine or variant).
    public static let invalidRequest: Self = "invalidRequest"
}
