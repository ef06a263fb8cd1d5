"""Where images come from: built-in sets, folders, arrays; splits, augmentation, loaders."""
